// The web admin works without this script; it adds confirmations,
// double-submit protection, select-on-focus for values to copy, and the
// live list of pending logins on the add-a-phone page. No framework: the
// pages are server-rendered.
"use strict";

document.addEventListener("submit", (e) => {
  const msg = e.target.dataset.confirm;
  if (msg && !window.confirm(msg)) {
    e.preventDefault();
    return;
  }
  // One tap, one request: a double tap on Approve must not send two.
  const buttons = e.target.querySelectorAll("button");
  setTimeout(() => buttons.forEach((b) => { b.disabled = true; }));
});

document.addEventListener("focusin", (e) => {
  if (e.target.matches(".copy")) e.target.select();
});

document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("live-pending");
  if (list) livePending(list, document.getElementById("live-status"));
});

// livePending polls /api/pending every 2 s and redraws list when the
// waiting logins change, so the owner can approve a phone as it asks.
function livePending(list, status) {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const ret = list.dataset.return;
  let last = "";
  async function poll() {
    try {
      const res = await fetch("/api/pending", { headers: { Accept: "application/json" }, cache: "no-store" });
      const body = await res.json();
      if (!res.ok) {
        status.textContent = body.error || "Checking for logins failed (" + res.status + ").";
        if (res.status === 401) return; // logged out: stop polling
      } else {
        status.textContent = "Checked " + new Date().toLocaleTimeString() + ".";
        const now = JSON.stringify(body.pending);
        if (now !== last) {
          last = now;
          draw(list, body.pending, csrf, ret);
        }
      }
    } catch (err) {
      status.textContent = "Checking for logins failed: " + err.message;
    }
    setTimeout(poll, 2000);
  }
  poll();
}

// draw replaces list's content with one card per login, built with DOM
// calls (never innerHTML) because host names come from the devices.
function draw(list, pending, csrf, ret) {
  list.replaceChildren();
  if (!pending || pending.length === 0) {
    list.append(el("p", { class: "muted waiting" }, "No login is waiting yet."));
    return;
  }
  for (const p of pending) {
    const dl = el("dl", {},
      el("dt", {}, "OS"), el("dd", {}, p.os || "-"),
      el("dt", {}, "Machine key"), el("dd", {}, el("code", { title: p.machine_key }, p.machine_key_short)),
      el("dt", {}, "Waiting since"), el("dd", {}, p.age),
      el("dt", {}, "Code"), el("dd", {}, el("code", {}, p.code)));
    const actions = el("div", { class: "actions" },
      form("/pending/" + encodeURIComponent(p.code) + "/approve", csrf, ret, el("button", { type: "submit" }, "Approve")),
      form("/pending/" + encodeURIComponent(p.code) + "/deny", csrf, ret, el("button", { type: "submit", class: "danger" }, "Deny")));
    list.append(el("article", { class: "card pending", "data-code": p.code },
      el("h2", {}, p.hostname || "(no host name)"), dl, actions));
  }
}

function form(action, csrf, ret, button) {
  return el("form", { method: "post", action: action },
    el("input", { type: "hidden", name: "csrf", value: csrf }),
    el("input", { type: "hidden", name: "return", value: ret }),
    button);
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}
