"""Operations: starting the servers on loopback and keeping the trained model in step with its inputs."""
