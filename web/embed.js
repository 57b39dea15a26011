/*
 * The debt-help assistant's chat widget, for a bank app's web view or any page that embeds it.
 *
 * One script tag and one call:
 *   <script src="http://127.0.0.1:5005/webhooks/widget/embed.js"></script>
 *   <script>DebtHelpWidget.mount({serverUrl: "http://127.0.0.1:5005", title: "债务咨询助手",
 *                                 initialPayload: "/greet"});</script>
 *
 * Config: serverUrl (the Rasa server; default: where this script came from), title, initialPayload (sent once
 * when a conversation starts; not shown), container (an element or selector to fill; default: a floating
 * panel with a launcher button), open (floating panel open at start), storage (default localStorage),
 * customerToken (optional: a token the bank app's backend signed for its logged-in customer, see
 * docs/bank-signing.md; the conversation is then the customer's on every device).
 *
 * It loads its stylesheet and the socket.io client (npm socket.io-client v4, copied to vendor/ at set-up)
 * from the folder it was loaded from, talks to Rasa's socketio channel (session_request / session_confirm /
 * user_uttered / bot_uttered) and keeps only the session token the server signed for this conversation (and its
 * id) in storage: the token is the credential, the id alone opens nothing. After a reload the transcript comes
 * from the server's masked copy (GET <serverUrl>/webhooks/widget/history/<id> with the token in the
 * Authorization header, see bot/channels/widget.py).
 *
 * Every message is put in the page as text (textContent, text nodes): never as HTML.
 */
(function () {
  "use strict";

  if (window.DebtHelpWidget && window.DebtHelpWidget.version) {
    return;
  }

  var ownScript = document.currentScript;
  var ASSET_BASE = ownScript && ownScript.src ? new URL(".", ownScript.src).href : null;
  var DEFAULT_SERVER = ownScript && ownScript.src ? new URL(ownScript.src).origin : window.location.origin;
  var MAX_CHARS = 2000; // the server refuses longer messages (bot/channels/message_guard.py)
  var HUMAN_PAYLOAD = "/request_human";
  // Handoff states in which a person is there or about to be (the bot is paused); the server sends "queued"
  // only when an agent is on duty. follow_up / returned_to_bot / closed / unavailable: the bot is talking.
  var IN_HANDOFF = { queued: true, agent_joined: true, agent_message: true, released: true };

  var TEXT = {
    title: "债务咨询助手",
    subtitle: "免费咨询 · 不收取任何费用",
    privacy: "为保护您的安全，请不要发送身份证号、银行卡号、密码或验证码。",
    inputLabel: "输入您的问题",
    placeholder: "请描述您的情况，按回车发送",
    send: "发送",
    human: "转人工",
    humanTitle: "转接人工客服",
    connecting: "正在连接…",
    online: "在线",
    offline: "连接中断，正在重连…",
    offlineSend: "连接中断，正在重连，恢复后即可发送。",
    typing: "对方正在输入",
    tooLong: "消息太长，已截取前两千字。请分几次简要描述，不要发送身份证号或银行卡号。",
    refused: "消息太长，未发送。请精简到两千字以内。",
    handoffQueued: "人工客服服务中 · 正在为您排队",
    handoffJoined: "人工客服服务中",
    handoffUnavailable: "暂时无法转接在线人工客服，请按上面的提示联系银行官方客服。",
    handoffClosed: "人工客服已结束服务，智能助手继续为您服务。",
    handoffReleased: "人工客服服务中 · 正在为您重新排队",
    handoffFollowUp: "您的请求已记录，人工客服稍后查看；现在由智能助手继续为您服务。",
    handoffReturned: "暂时没有人工客服接入，智能助手继续为您服务。",
    agentJoined: "人工客服已接入",
    agent: "人工客服",
    call: "拨打",
    callLabel: "拨打",
    unconfirmed: "号码来自公开资料，请以银行卡背面或官方App为准",
    historyError: "暂时无法加载之前的对话记录。",
    refusedSession: "无法验证您的登录状态，请重新打开页面。",
    launcher: "在线咨询",
    close: "收起",
    quickReplies: "可选回复",
    log: "对话记录",
  };

  var widgetCount = 0;

  // ---------- loading the stylesheet and the socket.io client ----------

  function assetUrl(name) {
    return (ASSET_BASE || DEFAULT_SERVER + "/webhooks/widget/") + name;
  }

  function ensureStylesheet() {
    if (document.querySelector("link[data-dhw-style]")) {
      return;
    }
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = assetUrl("widget.css");
    link.setAttribute("data-dhw-style", "");
    document.head.appendChild(link);
  }

  var ioWaiters = null;

  function withSocketIo(callback) {
    if (typeof window.io === "function") {
      callback(window.io);
      return;
    }
    if (ioWaiters) {
      ioWaiters.push(callback);
      return;
    }
    ioWaiters = [callback];
    var script = document.createElement("script");
    script.src = assetUrl("vendor/socket.io.min.js");
    script.onload = function () {
      var waiting = ioWaiters;
      ioWaiters = null;
      waiting.forEach(function (fn) { fn(window.io); });
    };
    script.onerror = function () {
      var waiting = ioWaiters;
      ioWaiters = null;
      waiting.forEach(function (fn) { fn(null); });
    };
    document.head.appendChild(script);
  }

  // ---------- safe rendering helpers ----------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  // http(s) URLs, and bare domains of the kinds the bot quotes (e.g. ipcrs.pbccrc.org.cn); a link is ASCII, so
  // Chinese text and punctuation end it. Any other scheme (javascript:, data:) is never made a link.
  var URL_PATTERN = /(?:https?:\/\/|\b(?=(?:[a-z0-9-]+\.)+(?:cn|com|net|org)\b))[^\s<>"'\u0080-\uffff]+/gi;

  /** Fill `node` with `text` as text nodes, turning web addresses into links. Never parses HTML. */
  function renderText(node, text) {
    text = String(text === undefined || text === null ? "" : text);
    var last = 0;
    var match;
    URL_PATTERN.lastIndex = 0;
    while ((match = URL_PATTERN.exec(text)) !== null) {
      var url = match[0].replace(/[.,;:!?)]+$/, "");
      if (match.index > last) {
        node.appendChild(document.createTextNode(text.slice(last, match.index)));
      }
      var link = el("a", "dhw-link", url);
      link.href = /^https?:\/\//i.test(url) ? url : "https://" + url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      node.appendChild(link);
      last = match.index + url.length;
      URL_PATTERN.lastIndex = last;
    }
    if (last < text.length) {
      node.appendChild(document.createTextNode(text.slice(last)));
    }
    return node;
  }

  function safeTel(value) {
    return typeof value === "string" && /^tel:\+?[0-9][0-9-]{1,19}$/.test(value) ? value : null;
  }

  function memoryStorage() {
    var data = {};
    return {
      getItem: function (key) { return Object.prototype.hasOwnProperty.call(data, key) ? data[key] : null; },
      setItem: function (key, value) { data[key] = String(value); },
      removeItem: function (key) { delete data[key]; },
    };
  }

  function defaultStorage() {
    try {
      var probe = "dhw-probe";
      window.localStorage.setItem(probe, "1");
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch (err) {
      return memoryStorage(); // storage blocked (private mode, some web views): the session lasts the page
    }
  }

  // ---------- the widget ----------

  function mount(options) {
    options = options || {};
    var serverUrl = String(options.serverUrl || DEFAULT_SERVER).replace(/\/+$/, "");
    var title = options.title ? String(options.title) : TEXT.title;
    var initialPayload = options.initialPayload ? String(options.initialPayload) : null;
    var storage = options.storage || defaultStorage();
    var storageKey = "debt-help-widget:session:" + serverUrl;  // the session id (not a credential)
    var tokenKey = "debt-help-widget:token:" + serverUrl;      // the session token (the credential)
    var customerToken = options.customerToken ? String(options.customerToken) : null;
    var uid = "dhw-" + ++widgetCount;

    ensureStylesheet();

    // --- DOM ---
    var root = el("section", "dhw");
    root.id = uid;
    root.setAttribute("aria-label", title);
    root.setAttribute("data-handoff-status", "none");
    root.setAttribute("data-connection", "connecting");

    var header = el("header", "dhw-header");
    var heading = el("div", "dhw-heading");
    heading.appendChild(el("h1", "dhw-title", title));
    var status = el("p", "dhw-status", TEXT.connecting);
    status.setAttribute("role", "status");
    heading.appendChild(status);
    header.appendChild(heading);
    var humanButton = el("button", "dhw-human", TEXT.human);
    humanButton.type = "button";
    humanButton.title = TEXT.humanTitle;
    header.appendChild(humanButton);
    root.appendChild(header);

    var offline = el("div", "dhw-banner dhw-offline", TEXT.offline);
    offline.setAttribute("role", "alert");
    offline.hidden = true;
    root.appendChild(offline);

    var handoffBanner = el("div", "dhw-banner dhw-handoff");
    handoffBanner.setAttribute("role", "status");
    handoffBanner.hidden = true;
    root.appendChild(handoffBanner);

    var privacy = el("p", "dhw-privacy", TEXT.privacy);
    root.appendChild(privacy);

    var log = el("div", "dhw-log");
    log.setAttribute("role", "log");
    log.setAttribute("aria-live", "polite");
    log.setAttribute("aria-label", TEXT.log);
    root.appendChild(log);

    var typing = el("div", "dhw-typing");
    typing.setAttribute("role", "status");
    typing.setAttribute("aria-label", TEXT.typing);
    typing.appendChild(el("span", "dhw-dot"));
    typing.appendChild(el("span", "dhw-dot"));
    typing.appendChild(el("span", "dhw-dot"));
    typing.hidden = true;
    root.appendChild(typing);

    var form = el("form", "dhw-composer");
    form.setAttribute("novalidate", "");
    var label = el("label", "dhw-label", TEXT.inputLabel);
    label.htmlFor = uid + "-input";
    var input = el("textarea", "dhw-input");
    input.id = uid + "-input";
    input.name = "message";
    input.rows = 1;
    input.placeholder = TEXT.placeholder;
    input.setAttribute("enterkeyhint", "send");
    input.setAttribute("autocomplete", "off");
    var sendButton = el("button", "dhw-send", TEXT.send);
    sendButton.type = "submit";
    form.appendChild(label);
    form.appendChild(input);
    form.appendChild(sendButton);
    root.appendChild(form);

    var note = el("p", "dhw-note");
    note.setAttribute("role", "alert");
    note.hidden = true;
    root.appendChild(note);

    // --- placement: in a container, or a floating panel with a launcher ---
    var container = options.container;
    if (typeof container === "string") {
      container = document.querySelector(container);
    }
    var launcher = null;
    if (container) {
      root.classList.add("dhw-inline");
      container.appendChild(root);
    } else {
      root.classList.add("dhw-floating");
      launcher = el("button", "dhw-launcher", TEXT.launcher);
      launcher.type = "button";
      launcher.setAttribute("aria-controls", uid);
      var closeButton = el("button", "dhw-close", TEXT.close);
      closeButton.type = "button";
      header.appendChild(closeButton);
      var setOpen = function (open) {
        root.hidden = !open;
        launcher.hidden = open;
        launcher.setAttribute("aria-expanded", open ? "true" : "false");
        if (open) {
          input.focus();
        }
      };
      launcher.addEventListener("click", function () { setOpen(true); });
      closeButton.addEventListener("click", function () { setOpen(false); });
      document.body.appendChild(launcher);
      document.body.appendChild(root);
      setOpen(options.open !== false);
    }

    // --- state ---
    var socket = null;
    var sessionId = storage.getItem(storageKey);
    var sessionToken = storage.getItem(tokenKey);
    var ready = false;          // session confirmed on the current connection
    var historyLoaded = false;  // the transcript was restored once for this page
    var typingTimer = null;

    function scrollToEnd() {
      log.scrollTop = log.scrollHeight;
    }

    function showNote(text) {
      note.textContent = text;
      note.hidden = !text;
    }

    function setConnection(state) {
      root.setAttribute("data-connection", state);
      offline.hidden = state !== "offline";
      status.textContent = state === "online" ? TEXT.online : state === "offline" ? TEXT.offline : TEXT.connecting;
      sendButton.disabled = state !== "online";
      humanButton.disabled = state !== "online";
    }

    function setTyping(on) {
      typing.hidden = !on;
      root.setAttribute("data-typing", on ? "true" : "false");
      if (typingTimer) {
        clearTimeout(typingTimer);
        typingTimer = null;
      }
      if (on) {
        typingTimer = setTimeout(function () { setTyping(false); }, 30000);
        scrollToEnd();
      }
    }

    function clearQuickReplies() {
      Array.prototype.forEach.call(log.querySelectorAll(".dhw-replies"), function (group) {
        group.parentNode.removeChild(group);
      });
    }

    function addRow(kind, child) {
      var row = el("div", "dhw-row dhw-row-" + kind);
      row.appendChild(child);
      log.appendChild(row);
      scrollToEnd();
      return row;
    }

    function addUserMessage(text) {
      clearQuickReplies();
      var bubble = el("div", "dhw-msg dhw-user", text); // textContent: shown as typed, never as HTML
      addRow("user", bubble);
    }

    function addBotText(text, who) {
      var bubble = el("div", "dhw-msg dhw-bot");
      if (who) {
        bubble.classList.add("dhw-agent");
        bubble.appendChild(el("span", "dhw-from", who));
      }
      renderText(bubble, text);
      addRow("bot", bubble);
    }

    function addSystemNotice(text) {
      addRow("system", el("p", "dhw-system", text));
    }

    function addQuickReplies(replies) {
      var group = el("div", "dhw-replies");
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", TEXT.quickReplies);
      replies.forEach(function (reply) {
        if (!reply || typeof reply.title !== "string") {
          return;
        }
        var button = el("button", "dhw-reply", reply.title);
        button.type = "button";
        button.addEventListener("click", function () {
          send(String(reply.payload || reply.title), reply.title);
        });
        group.appendChild(button);
      });
      if (group.childNodes.length) {
        log.appendChild(group);
        scrollToEnd();
      }
    }

    function addChannelCard(card) {
      var box = el("article", "dhw-card");
      box.setAttribute("data-reason", String(card.reason || ""));
      box.appendChild(el("h2", "dhw-card-title", card.title || ""));
      var unconfirmed = false;
      (Array.isArray(card.channels) ? card.channels : []).forEach(function (channel) {
        if (!channel || typeof channel !== "object") {
          return;
        }
        var line = el("div", "dhw-card-line");
        var text = el("div", "dhw-card-text");
        text.appendChild(el("span", "dhw-card-label", channel.label || ""));
        text.appendChild(el("span", "dhw-card-number", channel.number || ""));
        line.appendChild(text);
        var tel = safeTel(channel.tel);
        if (tel) {
          var call = el("a", "dhw-call", TEXT.call);
          call.href = tel;
          call.setAttribute("aria-label", TEXT.callLabel + " " + (card.title || "") + " " + (channel.label || ""));
          call.addEventListener("click", function () {
            // The dialler tells the bot nothing: report the tap for the record (bot/referral_taps.py).
            if (socket && socket.connected) {
              socket.emit("referral_tapped", { reason: String(card.reason || ""), number: String(channel.number || "") });
            }
          });
          line.appendChild(call);
        }
        if (channel.status === "unconfirmed") {
          unconfirmed = true;
        }
        box.appendChild(line);
      });
      if (card.note || unconfirmed) {
        box.appendChild(el("p", "dhw-card-note", card.note || TEXT.unconfirmed));
      }
      addRow("bot", box);
    }

    function setHandoff(state, message) {
      root.setAttribute("data-handoff-status", state);
      var inHandoff = IN_HANDOFF[state] === true;
      root.classList.toggle("dhw-with-human", inHandoff);
      handoffBanner.hidden = !inHandoff;
      handoffBanner.textContent = state === "queued" ? TEXT.handoffQueued
        : state === "released" ? TEXT.handoffReleased : inHandoff ? TEXT.handoffJoined : "";
      if (message) {
        addSystemNotice(message);
      }
    }

    function handleHandoff(payload, restoring) {
      var state = String(payload.status || "");
      if (state === "agent_message") {
        if (payload.text) {
          addBotText(payload.text, payload.agent_name ? String(payload.agent_name) : TEXT.agent);
        }
        setHandoff("agent_joined");
        root.setAttribute("data-handoff-status", "agent_message");
        return;
      }
      if (state === "queued") {
        setHandoff(state, null);
      } else if (state === "agent_joined") {
        setHandoff(state, restoring ? null : TEXT.agentJoined);
      } else if (state === "released") {
        setHandoff(state, null);
      } else if (state === "follow_up") {
        setHandoff(state, restoring ? null : TEXT.handoffFollowUp);
      } else if (state === "returned_to_bot") {
        setHandoff(state, restoring ? null : TEXT.handoffReturned);
      } else if (state === "closed") {
        setHandoff(state, TEXT.handoffClosed);
      } else if (state === "unavailable") {
        setHandoff(state, TEXT.handoffUnavailable);
      } else {
        return;
      }
      if (payload.text) {
        addBotText(payload.text);
      }
    }

    /** Show one bot_uttered payload (text, quick replies/buttons, custom payloads). */
    function receive(data, restoring) {
      if (!data || typeof data !== "object") {
        return;
      }
      if (!restoring) {
        setTyping(false);
      }
      // A custom payload arrives over socketio as the data itself ({type: ...}), from the history as {custom}.
      var isCustom = typeof data.type === "string";
      var custom = data.custom && typeof data.custom === "object" ? data.custom : data;
      if (!isCustom && typeof data.text === "string" && data.text) {
        addBotText(data.text);
      }
      if (custom.type === "channel_card") {
        addChannelCard(custom);
      } else if (custom.type === "handoff") {
        handleHandoff(custom, restoring);
      } // other types are skipped: the same response also says it in text (docs/channels/payloads.md)
      var replies = data.quick_replies || data.buttons;
      if (Array.isArray(replies) && replies.length) {
        addQuickReplies(replies);
      }
    }

    function restore(messages) {
      messages.forEach(function (message, index) {
        if (message.from === "user") {
          if (typeof message.text === "string") {
            addUserMessage(message.text);
          } else if (message.payload === HUMAN_PAYLOAD) {
            addUserMessage(TEXT.human);
          } // other payloads (the initial greeting) are not shown, as when they were sent
          return;
        }
        var parts = String(message.text || "").split("\n\n").filter(function (part) { return part.trim(); });
        var last = index === messages.length - 1;
        parts.forEach(function (part, i) {
          var isLastPart = i === parts.length - 1;
          receive({ text: part, quick_replies: last && isLastPart ? message.quick_replies : null }, true);
        });
        if (message.custom) {
          receive({ custom: message.custom }, true);
        }
      });
    }

    function loadHistory(done) {
      var request;
      try {
        request = fetch(serverUrl + "/webhooks/widget/history/" + encodeURIComponent(sessionId),
                        { credentials: "omit", cache: "no-store",
                          headers: { Authorization: "Bearer " + sessionToken } });
      } catch (err) {
        done(false);
        return;
      }
      request
        .then(function (answer) {
          if (!answer.ok) {
            throw new Error("history " + answer.status);
          }
          return answer.json();
        })
        .then(function (body) {
          var messages = body && Array.isArray(body.messages) ? body.messages : [];
          restore(messages);
          done(messages.length > 0);
        })
        .catch(function () {
          addSystemNotice(TEXT.historyError);
          done(true);
        });
    }

    function emitMessage(payload) {
      socket.emit("user_uttered", { message: payload, session_id: sessionId });
      setTyping(true);
    }

    function onSessionConfirmed(confirmed) {
      var confirmedId = confirmed && typeof confirmed === "object" ? confirmed.session_id : null;
      var confirmedToken = confirmed && typeof confirmed === "object" ? confirmed.session_token : null;
      if (typeof confirmedId !== "string" || !confirmedId || typeof confirmedToken !== "string") {
        return;
      }
      var known = sessionId === confirmedId;
      sessionId = confirmedId;
      sessionToken = confirmedToken;
      customerToken = null; // used once: reconnections present the server's own token for the same conversation
      storage.setItem(storageKey, confirmedId);
      storage.setItem(tokenKey, confirmedToken);
      ready = true;
      setConnection("online");
      if (historyLoaded) {
        return;
      }
      historyLoaded = true;
      var greet = function (hadHistory) {
        root.setAttribute("data-history", hadHistory ? "restored" : "empty");
        if (!hadHistory && initialPayload) {
          emitMessage(initialPayload);
        }
      };
      if (known) {
        loadHistory(greet);
      } else {
        greet(false);
      }
    }

    /** Send `payload` to the bot, showing `shown` (default: the payload) as the user's message. */
    function send(payload, shown) {
      payload = String(payload || "").trim();
      if (!payload) {
        return false;
      }
      if (payload.length > MAX_CHARS) {
        showNote(TEXT.refused);
        return false;
      }
      if (!ready || !socket || !socket.connected) {
        showNote(TEXT.offlineSend);
        return false;
      }
      showNote("");
      addUserMessage(shown === undefined ? payload : shown);
      emitMessage(payload);
      return true;
    }

    // --- input ---
    input.addEventListener("input", function () {
      if (input.value.length > MAX_CHARS) {
        input.value = input.value.slice(0, MAX_CHARS);
        showNote(TEXT.tooLong);
      }
      input.style.height = "auto";
      input.style.height = Math.min(input.scrollHeight, 120) + "px";
    });

    input.addEventListener("keydown", function (event) {
      // Enter sends; Shift+Enter is a new line; Enter that confirms an IME candidate (pinyin) does not send.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });

    function submit() {
      if (send(input.value)) {
        input.value = "";
        input.style.height = "auto";
      }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit();
    });

    humanButton.addEventListener("click", function () {
      send(HUMAN_PAYLOAD, TEXT.human);
    });

    // --- connection ---
    setConnection("connecting");
    withSocketIo(function (io) {
      if (!io) {
        setConnection("offline");
        return;
      }
      socket = io(serverUrl, {
        path: "/socket.io",
        // Long-polling only: the websocket transport fails inside Rasa 3.6's server (Sanic 21.12 with
        // python-engineio 4: "Invalid frame header"), and polling passes every proxy a bank app may sit behind.
        transports: ["polling"],
        upgrade: false,
        reconnection: true,
        reconnectionDelay: 1000,
        reconnectionDelayMax: 5000,
        timeout: 10000,
      });
      socket.on("connect", function () {
        ready = false;
        socket.emit("session_request", customerToken ? { customer_token: customerToken }
                                                     : { session_token: sessionToken || null });
      });
      socket.on("session_confirm", onSessionConfirmed);
      socket.on("refused", function (data) {
        if (data && data.event === "session_request") {
          showNote(TEXT.refusedSession);
        } else {
          setTyping(false);
        }
      });
      socket.on("bot_uttered", function (data) { receive(data, false); });
      socket.on("disconnect", function () {
        ready = false;
        setTyping(false);
        setConnection("offline");
      });
      socket.on("connect_error", function () {
        ready = false;
        setConnection("offline");
      });
    });

    return {
      element: root,
      send: send,
      /** Show one bot_uttered payload as if it had arrived over the socket (for hosts and tests). */
      receive: function (data) { receive(data, false); },
      sessionId: function () { return sessionId; },
      destroy: function () {
        if (socket) {
          socket.close();
        }
        if (launcher && launcher.parentNode) {
          launcher.parentNode.removeChild(launcher);
        }
        if (root.parentNode) {
          root.parentNode.removeChild(root);
        }
      },
    };
  }

  window.DebtHelpWidget = { version: "1", mount: mount, renderText: renderText };
})();
