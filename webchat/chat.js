/*
 * Northwind shop assistant: a web chat for Rasa's socket.io channel (credentials.yml: `socketio` with
 * `session_persistence: true`). Plain browser JavaScript, no build step; load vendor/socket.io.min.js first.
 *
 * It renders into the element with id "shop-chat", configured by its data attributes:
 *   data-server                  the Rasa server's URL (default: this page's host name, port 5005)
 *   data-allow-server-param      when present, the page's ?server= parameter overrides data-server (demo page
 *                                only: on a shop's own pages a crafted link could otherwise point the chat elsewhere)
 *   data-storage                 "local" (default: the conversation survives closing the tab) or "session" (per tab)
 *   data-session-minutes         start afresh after this long without a message (default 60, as domain.yml's
 *                                session_expiration_time: after that the bot has forgotten the conversation too)
 *   data-reply-timeout-seconds   stop showing "typing" and say so after this long without an answer (default 30)
 */
(function () {
  "use strict";

  const root = document.getElementById("shop-chat");
  if (!root) {
    console.error("shop chat: no element with id \"shop-chat\" on this page");
    return;
  }
  const params = new URLSearchParams(window.location.search);
  const defaultServer = `${window.location.protocol}//${window.location.hostname}:5005`;
  const server = (root.hasAttribute("data-allow-server-param") && params.get("server"))
    || root.dataset.server || defaultServer;
  const store = storage(root.dataset.storage === "session" ? "sessionStorage" : "localStorage");
  const sessionMs = Number(root.dataset.sessionMinutes || 60) * 60 * 1000;
  const replyTimeoutMs = Number(root.dataset.replyTimeoutSeconds || 30) * 1000;
  const storageKey = `shop-chat:v1:${server}`;
  const MAX_KEPT_MESSAGES = 200;

  // Which tab sent the latest message: only that tab records the answers, so that several open tabs of one
  // conversation (they all receive every answer) do not store each answer several times.
  const tabId = (() => {
    const tabStore = storage("sessionStorage");
    const existing = tabStore && tabStore.getItem("shop-chat:tab");
    if (existing) return existing;
    const created = Math.random().toString(36).slice(2) + Date.now().toString(36);
    if (tabStore) tabStore.setItem("shop-chat:tab", created);
    return created;
  })();

  function storage(name) {
    try {
      return window[name]; // reading it throws where the browser blocks site data
    } catch (error) {
      console.warn(`shop chat: no ${name}; the conversation will not survive a reload`, error);
      return null;
    }
  }

  function emptyState() {
    return { sessionId: null, lastActive: Date.now(), sender: null, messages: [] };
  }

  function loadState() {
    try {
      const saved = store && JSON.parse(store.getItem(storageKey));
      if (saved && Array.isArray(saved.messages) && Date.now() - saved.lastActive < sessionMs) return saved;
    } catch (error) {
      console.warn("shop chat: ignoring a stored conversation that cannot be read", error);
    }
    return emptyState();
  }

  function saveState() {
    state.messages = state.messages.slice(-MAX_KEPT_MESSAGES);
    try {
      if (store) store.setItem(storageKey, JSON.stringify(state));
    } catch (error) {
      console.warn("shop chat: the conversation cannot be kept across reloads here", error);
    }
  }

  let state = loadState();

  // ---- the page ----
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const panel = element("section", "shop-chat");
  panel.setAttribute("aria-label", "Chat with the Northwind Goods assistant");
  const header = element("header", "shop-chat__header");
  const title = element("h2", "shop-chat__title", "Northwind Goods assistant");
  const restart = element("button", "shop-chat__restart", "New conversation");
  restart.type = "button";
  header.append(title, restart);
  const banner = element("div", "shop-chat__banner");
  banner.setAttribute("role", "alert");
  banner.hidden = true;
  const log = element("ol", "shop-chat__log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", "Conversation");
  const typing = element("div", "shop-chat__typing");
  typing.setAttribute("role", "status");
  typing.setAttribute("aria-label", "The assistant is typing");
  typing.append(element("span"), element("span"), element("span"));
  typing.hidden = true;
  const form = element("form", "shop-chat__form");
  const input = element("input", "shop-chat__input");
  input.type = "text";
  input.autocomplete = "off";
  input.maxLength = 1000;
  input.placeholder = "Type your message…";
  input.setAttribute("aria-label", "Your message");
  const send = element("button", "shop-chat__send", "Send");
  send.type = "submit";
  form.append(input, send);
  panel.append(header, banner, log, typing, form);
  root.replaceChildren(panel);

  function messageItem(message) {
    const item = element("li", `shop-chat__message shop-chat__message--${message.from}`);
    if (message.text) item.append(element("p", "shop-chat__bubble", message.text));
    if (message.image) {
      const image = element("img", "shop-chat__image");
      image.src = message.image;
      image.alt = message.text || "Image from the assistant";
      item.append(image);
    }
    return item;
  }

  function quickReplies(replies) {
    const group = element("div", "shop-chat__replies");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Suggested answers");
    for (const reply of replies) {
      const button = element("button", "shop-chat__reply", reply.title);
      button.type = "button";
      button.addEventListener("click", () => sendMessage(reply.payload, reply.title));
      group.append(button);
    }
    return group;
  }

  function render() {
    log.replaceChildren(...state.messages.map(messageItem));
    const last = state.messages[state.messages.length - 1];
    // Only the latest bot message's buttons are live: once the customer answered, they are history.
    if (last && last.from === "bot" && last.replies && last.replies.length) {
      log.lastElementChild.append(quickReplies(last.replies));
    }
    log.scrollTop = log.scrollHeight;
    updateControls();
  }

  function notice(text) {
    const item = element("li", "shop-chat__notice", text);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = false;
  }

  // ---- talking to Rasa ----
  if (typeof window.io !== "function") {
    showBanner("The chat could not load. Please reload the page.");
    console.error("shop chat: socket.io.min.js must be loaded before chat.js");
    return;
  }
  // withCredentials: the balancer's sticky cookie goes along from the shop's own site too (another origin), so every
  // poll of this session reaches the replica that holds it (docs/deployment.md).
  const socket = window.io(server, { path: "/socket.io", withCredentials: true });
  let joined = null; // the session this tab's connection receives answers for
  let replyTimer = null;

  function ready() {
    return socket.connected && joined !== null && joined === state.sessionId;
  }

  function updateControls() {
    const enabled = ready();
    input.disabled = !enabled;
    send.disabled = !enabled;
    for (const button of log.querySelectorAll(".shop-chat__reply")) button.disabled = !enabled;
  }

  function join() {
    joined = null;
    updateControls();
    if (socket.connected) socket.emit("session_request", { session_id: state.sessionId });
  }

  function setTyping(on) {
    typing.hidden = !on;
    window.clearTimeout(replyTimer);
    if (on) {
      replyTimer = window.setTimeout(() => {
        typing.hidden = true;
        notice("No answer yet: the assistant may be busy. Please try again in a moment.");
      }, replyTimeoutMs);
    }
  }

  function sendMessage(payload, shownText) {
    const text = (shownText || payload).trim();
    if (!ready() || !payload.trim()) return;
    state.messages.push({ from: "user", text });
    state.sender = tabId;
    state.lastActive = Date.now();
    saveState();
    render();
    socket.emit("user_uttered", { message: payload, session_id: state.sessionId });
    setTyping(true);
  }

  function botMessage(data) {
    const message = { from: "bot", text: data.text || "" };
    const buttons = data.quick_replies || data.buttons || [];
    if (buttons.length) message.replies = buttons.map((b) => ({ title: b.title, payload: b.payload }));
    const attachment = data.attachment;
    if (attachment && attachment.type === "image" && attachment.payload) message.image = attachment.payload.src;
    return message.text || message.image || message.replies ? message : null;
  }

  socket.on("connect", () => {
    banner.hidden = true;
    join();
  });

  socket.on("session_confirm", (sessionId) => {
    if (state.sessionId === null) {
      state.sessionId = sessionId; // a new conversation: Rasa chose its id
      saveState();
    }
    if (sessionId !== state.sessionId) return; // an answer to an older request of this tab
    joined = sessionId;
    updateControls();
    if (document.activeElement === document.body) input.focus();
  });

  socket.on("bot_uttered", (data) => {
    setTyping(false);
    const message = botMessage(data || {});
    if (!message) return;
    if (state.sender !== null && state.sender !== tabId) return; // the asking tab records it; see "storage"
    state.messages.push(message);
    state.lastActive = Date.now();
    saveState();
    render();
  });

  socket.on("connect_error", (error) => {
    joined = null;
    updateControls();
    setTyping(false);
    showBanner("The assistant can't be reached right now. Retrying…");
    console.warn(`shop chat: cannot connect to ${server}`, error.message);
  });

  socket.on("disconnect", (reason) => {
    joined = null;
    updateControls();
    if (reason === "io client disconnect") return;
    showBanner("The connection to the assistant was lost. Reconnecting…");
    if (reason === "io server disconnect") socket.connect(); // socket.io retries by itself only after other causes
  });

  // Another tab of this conversation recorded something or started afresh: show the same here.
  window.addEventListener("storage", (event) => {
    if (event.key !== storageKey || event.storageArea !== store) return;
    state = loadState();
    setTyping(false);
    render();
    if (state.sessionId !== joined && state.sessionId !== null) join();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage(input.value);
    input.value = "";
  });

  restart.addEventListener("click", () => {
    state = emptyState();
    saveState();
    setTyping(false);
    render();
    join();
  });

  render();
})();
