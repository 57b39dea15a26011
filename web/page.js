/* The standalone page: the widget fills the page and talks to the server that served it. */
(function () {
  "use strict";
  window.debtHelpChat = window.DebtHelpWidget.mount({
    serverUrl: window.location.origin,
    container: "#chat",
    initialPayload: "/greet",
  });
})();
