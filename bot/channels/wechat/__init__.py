"""The WeChat mini-program customer-service channel (``/webhooks/wechat_miniprogram/webhook``).

Registered in credentials.yml as ``bot.channels.wechat.channel.WeChatMiniProgramInput``; docs/channels/wechat.md
says how to configure and try it. The modules, in the order a push meets them:

* ``settings``: the ``WECHAT_*`` environment variables and what is missing or invalid;
* ``security``: signatures, replay protection and AES (wechatpy), and the keyed hash that turns an openid into
  the Rasa sender id;
* ``push``: one webhook request checked and parsed into a ``Push``, or refused with its 4xx;
* ``channel``: the Rasa input channel and the service behind it (acknowledge, deduplicate, process);
* ``render``: bot messages of one turn as customer-service messages (pure);
* ``delivery``: rendered messages sent, with what the next message needs remembered;
* ``api``: the access token and the customer-service send API (aiohttp);
* ``store``: the state shared by every server (SQL or Redis), a key-value store with the channel's jobs on top.
"""
