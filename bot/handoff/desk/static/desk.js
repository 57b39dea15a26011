// The agent desk page: plain JavaScript over the desk's /api (see bot/handoff/desk/). No libraries.
"use strict";

const state = { token: "", me: null, selected: null, ticket: null, timers: [] };
const $ = (id) => document.getElementById(id);

const ROLE_LABELS = { user: "用户", bot: "助手", agent: "客服" };
const STATUS_LABELS = { queued: "排队中", claimed: "已接入", follow_up: "待跟进（助手服务中）", closed: "已结束" };
const INTENT_LABELS = {
  seek_debt_agency: "咨询收费中介", seek_credit_repair: "想“修复”征信", agency_victim: "已被中介骗",
  ask_evade_debt: "想躲债", ask_legal_risk: "问法律后果", ask_hardship_plan: "想自己协商还款",
  report_collection_abuse: "被暴力催收", ask_credit_record: "问征信记录", ask_complaint_channel: "问投诉渠道",
  express_distress: "情绪危机", request_human: "要求转人工", nlu_fallback: "助手未理解",
};

function headers() {
  const h = { "Authorization": "Bearer " + state.token, "Content-Type": "application/json" };
  return h;
}

async function api(method, path, body) {
  const answer = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  let data = {};
  try { data = await answer.json(); } catch (e) { data = {}; }
  if (!answer.ok) {
    const reasons = { 400: "请求有误", 401: "令牌无效，请重新登录", 404: "会话不存在", 409: "会话状态不允许此操作",
                      413: "内容太长", 502: "消息未能送达用户，请稍后重试" };
    // A reply the user's channel could not take is "未送达", never "已发送" (bot/handoff/delivery.py).
    const reason = data.delivered === false ? "未送达，用户没有收到这条消息" : (reasons[answer.status] || "出错了");
    const error = new Error(reason + "：" + (data.error || answer.status));
    error.status = answer.status;
    throw error;
  }
  return data;
}

function age(seconds) {
  if (seconds < 60) return seconds + " 秒";
  if (seconds < 3600) return Math.floor(seconds / 60) + " 分钟";
  return Math.floor(seconds / 3600) + " 小时 " + Math.floor((seconds % 3600) / 60) + " 分钟";
}

function text(tag, content, className) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

async function login() {
  state.token = $("token").value.trim();
  try {
    state.me = await api("GET", "/api/me");
  } catch (err) {
    $("login-error").textContent = err.message;
    return;
  }
  if (state.me.role === "compliance") {  // compliance credentials do not work tickets: their page is /compliance
    $("login-error").replaceChildren("合规令牌不能处理会话，请前往", Object.assign(text("a", "合规报表页面"),
                                                                   { href: "/compliance" }), "。");
    return;
  }
  sessionStorage.setItem("desk", JSON.stringify({ token: state.token }));
  $("login").hidden = true;
  $("desk").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = "坐席：" + state.me.agent;
  const select = $("outcome");
  select.replaceChildren();
  for (const [code, label] of Object.entries(state.me.outcomes)) {
    const option = text("option", label);
    option.value = code;
    select.appendChild(option);
  }
  await refreshQueue();
  state.timers.push(setInterval(refreshQueue, 5000));
  state.timers.push(setInterval(refreshTranscript, 3000));
}

function logout() {
  sessionStorage.removeItem("desk");
  state.timers.forEach(clearInterval);
  location.reload();
}

async function refreshQueue() {
  let data;
  try {
    // Page through every ticket (most urgent first), so that a flood of tickets never hides one.
    const closed = $("show-closed").checked ? "&include_closed=1" : "";
    let offset = 0;
    const tickets = [];
    for (;;) {
      data = await api("GET", "/api/tickets?offset=" + offset + closed);
      tickets.push(...data.tickets);
      if (data.next_offset === null || data.next_offset === undefined) break;
      offset = data.next_offset;
    }
    data.tickets = tickets;
  } catch (err) {
    if (err.status === 401) logout();
    return;
  }
  $("presence").textContent = data.agents_on_duty
    ? "在线坐席：" + data.agents_present.join("、")
    : (data.open_now ? "在线坐席：无" : "当前不在服务时间，新请求记为待跟进");
  const body = $("queue").querySelector("tbody");
  body.replaceChildren();
  for (const t of data.tickets) {
    const row = document.createElement("tr");
    row.dataset.ticketId = t.id;
    row.setAttribute("data-testid", "queue-row");
    if (t.id === state.selected) row.className = "selected";
    if (t.alert_at) row.classList.add("alert");
    row.appendChild(text("td", (t.alert_at ? "⚠ " : "") + t.priority_label, "p" + t.priority));
    row.appendChild(text("td", t.reason_label));
    row.appendChild(text("td", age(t.age_seconds)));
    row.appendChild(text("td", STATUS_LABELS[t.status] + (t.claimed_by ? "（" + t.claimed_by + "）" : "")));
    row.appendChild(text("td", t.channel || "未知"));
    row.addEventListener("click", () => openTicket(t.id));
    body.appendChild(row);
  }
  $("queue-empty").hidden = data.tickets.length > 0;
}

function showSummary(ticket) {
  const s = ticket.summary || {};
  const dl = $("summary");
  dl.replaceChildren();
  const add = (label, value) => {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) return;
    dl.appendChild(text("dt", label));
    dl.appendChild(text("dd", Array.isArray(value) ? value.join("；") : String(value)));
  };
  add("⚠ 等待中的危险信号", ticket.alert_text);
  add("紧急程度", ticket.priority_label);
  add("转人工原因", ticket.reason_label);
  add("用户提到的问题", (s.intents_seen || []).map((i) => INTENT_LABELS[i] || i));
  for (const group of ["situation", "risk"]) {
    for (const [slot, value] of Object.entries(s[group] || {})) {
      add((state.me.slot_labels || {})[slot] || slot, Array.isArray(value) ? value.join("、") : value);
    }
  }
  add("已给过的官方渠道", s.channels_given);
  add("用户最后说", s.last_user_message);
  add("结束结果", ticket.outcome_label);
}

function showTicket(ticket) {
  state.ticket = ticket;
  $("ticket-panel").hidden = false;
  $("ticket-id").textContent = ticket.id.slice(0, 8);
  $("ticket-status").textContent = STATUS_LABELS[ticket.status] + (ticket.claimed_by ? "（" + ticket.claimed_by + "）" : "");
  $("ticket-status").dataset.status = ticket.status;
  const mine = ticket.status === "claimed" && ticket.claimed_by === state.me.agent;
  $("claim").hidden = ticket.status !== "queued" && ticket.status !== "follow_up";
  $("release").hidden = !mine;
  $("reply-box").hidden = !mine || ticket.can_receive_agent === false;
  $("close-box").hidden = !mine;
  showSummary(ticket);
}

function showMessages(messages, live) {
  const list = $("transcript");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 5;
  list.replaceChildren();
  for (const m of messages) {
    const item = document.createElement("li");
    item.className = m.role;
    item.appendChild(text("span", m.role === "agent" ? "客服 " + (m.agent || "") : ROLE_LABELS[m.role] || m.role, "who"));
    item.appendChild(document.createTextNode(m.text || ""));
    if (m.time) item.appendChild(text("span", new Date(m.time).toLocaleTimeString("zh-CN"), "time"));
    list.appendChild(item);
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
  $("live-state").textContent = live ? "（实时）" : "（无法连接对话服务器，显示转人工时的记录）";
}

function showNotes(notes) {
  const list = $("notes");
  list.replaceChildren();
  for (const n of notes) list.appendChild(text("li", n.agent + "：" + n.text));
}

async function openTicket(id) {
  state.selected = id;
  $("ticket-message").textContent = "";
  try {
    const data = await api("GET", "/api/tickets/" + encodeURIComponent(id));
    showTicket(data.ticket);
    showNotes(data.notes);
    showMessages(data.ticket.transcript || [], false);
    await refreshTranscript();
  } catch (err) {
    $("ticket-message").textContent = err.message;
  }
}

async function refreshTranscript() {
  if (!state.selected) return;
  try {
    const data = await api("GET", "/api/tickets/" + encodeURIComponent(state.selected) + "/transcript");
    showMessages(data.messages, data.live);
  } catch (err) { /* the next poll retries */ }
}

async function act(method, path, body, done) {
  $("ticket-message").textContent = "";
  try {
    const data = await api(method, path, body);
    if (data.ticket) showTicket(data.ticket);
    if (done) done(data);
    await refreshQueue();
    await refreshTranscript();
  } catch (err) {
    $("ticket-message").textContent = err.message;
  }
}

function ticketPath(suffix) { return "/api/tickets/" + encodeURIComponent(state.selected) + suffix; }

$("login-button").addEventListener("click", login);
$("logout").addEventListener("click", logout);
$("show-closed").addEventListener("change", refreshQueue);
$("claim").addEventListener("click", () => act("POST", ticketPath("/claim"), null,
  () => { $("ticket-message").textContent = "已接入，用户已收到通知。"; }));
$("send-reply").addEventListener("click", () => act("POST", ticketPath("/reply"), { text: $("reply-text").value },
  (d) => { $("reply-text").value = ""; $("ticket-message").textContent = d.delivered ? "已送达。" : "未送达。"; }));
$("release").addEventListener("click", () => act("POST", ticketPath("/release"), null,
  () => { $("ticket-message").textContent = "已放回队列，用户已收到通知。"; }));
$("add-note").addEventListener("click", () => act("POST", ticketPath("/notes"), { text: $("note-text").value },
  async () => { $("note-text").value = ""; const d = await api("GET", ticketPath("")); showNotes(d.notes); }));
$("close").addEventListener("click", () => act("POST", ticketPath("/close"), { outcome: $("outcome").value },
  () => { $("ticket-message").textContent = "会话已结束，助手已恢复服务。"; }));

const saved = sessionStorage.getItem("desk");
if (saved) {
  const { token } = JSON.parse(saved);
  $("token").value = token;
  login();
}
