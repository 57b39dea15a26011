// The compliance page: plain JavaScript over the desk's /api/compliance (bot/handoff/desk/compliance_api.py).
// The token is sent as a header on every request (never in a URL), so the chart images come inline in the
// report's JSON and the CSV is fetched and handed to the browser as a download. No libraries.
"use strict";

const state = { token: "" };
const $ = (id) => document.getElementById(id);

const COLUMN_LABELS = {
  group: "分组", conversations: "会话数", risk_conversations: "风险会话", handovers: "转人工", claimed: "已接入",
  median_claim_seconds: "接入用时中位数（秒）", turns: "轮次", fallback_rate: "未理解率",
};
const REASONS = { 400: "查询条件有误", 401: "令牌无效或已过期，请重新登录", 403: "无权查看：此页面仅限合规岗位",
                  503: "合规记录暂时无法读取，请稍后重试" };

function text(tag, content, className) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

function query() {
  const params = new URLSearchParams({ from: $("from").value, to: $("to").value, by: $("by").value });
  return params.toString();
}

async function call(path) {
  const answer = await fetch(path, { headers: { "Authorization": "Bearer " + state.token } });
  if (!answer.ok) {
    let detail = answer.status;
    try { detail = (await answer.json()).error || detail; } catch (e) { /* not JSON */ }
    const error = new Error((REASONS[answer.status] || "出错了") + "：" + detail);
    error.status = answer.status;
    throw error;
  }
  return answer;
}

function showFigures(data) {
  const report = data.report;
  const routes = data.routes;
  const head = $("figures").tHead;
  const body = $("figures").tBodies[0];
  const row = document.createElement("tr");
  for (const key of Object.keys(COLUMN_LABELS)) row.appendChild(text("th", COLUMN_LABELS[key], key === "group" ? "" : "number"));
  for (const route of routes) row.appendChild(text("th", "转介：" + route, "number"));
  head.replaceChildren(row);
  body.replaceChildren();
  for (const g of report.groups) {
    const tr = document.createElement("tr");
    tr.appendChild(text("td", g.group));
    for (const key of Object.keys(COLUMN_LABELS).slice(1)) {
      let value = g[key];
      if (key === "fallback_rate" && value !== null) value = (value * 100).toFixed(1) + "%";
      tr.appendChild(text("td", value === null ? "-" : String(value), "number"));
    }
    for (const route of routes) tr.appendChild(text("td", String(g.referrals[route] || 0), "number"));
    body.appendChild(tr);
  }
  $("figures-empty").hidden = report.groups.length > 0;
  const rising = $("rising");
  rising.replaceChildren();
  for (const r of report.rising_pitches) rising.appendChild(text("li", r.tactic + "：" + r.this_window + "（之前：" + r.previous_window + "）"));
  if (!report.rising_pitches.length) rising.appendChild(text("li", "无"));
  const total = report.groups.reduce((n, g) => n + g.conversations, 0);
  $("period").textContent = report.from + " 至 " + report.to + "（中国时间）" + (report.by === "tactic"
    ? "：按话术分组时一个会话可计入多个话术" : "，共 " + total + " 个会话");
}

async function loadReport() {
  const data = await (await call("/api/compliance/report?" + query())).json();
  $("from").value = data.report.from;
  $("to").value = data.report.to;
  $("by").value = data.report.by;
  $("chart-conversations").src = data.charts.conversations;
  $("chart-referrals").src = data.charts.referrals;
  showFigures(data);
}

async function showReport(event) {
  event.preventDefault();
  $("report-error").textContent = "";
  try {
    await loadReport();
  } catch (err) {
    $("report-error").textContent = err.message;
  }
}

async function download() {
  $("report-error").textContent = "";
  try {
    const answer = await call("/api/compliance/report.csv?" + query());
    const disposition = answer.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const url = URL.createObjectURL(await answer.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = match ? match[1] : "compliance-report.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    $("report-error").textContent = err.message;
  }
}

async function login() {
  state.token = $("token").value.trim();
  $("login-error").textContent = "";
  try {
    const me = await (await call("/api/me")).json();
    await loadReport();
    sessionStorage.setItem("compliance", JSON.stringify({ token: state.token }));
    $("who").textContent = "合规：" + me.agent;
  } catch (err) {
    state.token = "";
    $("login-error").textContent = err.message;
    return;
  }
  $("login").hidden = true;
  $("report-panel").hidden = false;
  $("logout").hidden = false;
}

function logout() {
  sessionStorage.removeItem("compliance");
  location.reload();
}

$("login-button").addEventListener("click", login);
$("logout").addEventListener("click", logout);
$("query").addEventListener("submit", showReport);
$("download").addEventListener("click", download);

const saved = sessionStorage.getItem("compliance");
if (saved) {
  $("token").value = JSON.parse(saved).token;
  login();
}
