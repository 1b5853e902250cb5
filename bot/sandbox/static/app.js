// The sandbox chat page: one emulated Telegram account per pane, talking to the real bot through
// the emulator's user-side API (bot/sandbox/webapi.py). No build step, no dependency.
"use strict";

(() => {
  const API = "/sandbox/api/users";
  const POLL_SECONDS = 25;
  const LANGUAGE_KEY = "sandbox-language";
  const ROLE_TEXT = {
    mentee: "Un·e jeune qui cherche un·e mentor·e",
    mentor: "Une personne qui veut devenir mentor·e",
    parent: "Inscrit son enfant, ou confirme l'inscription d'un·e jeune de moins de 15 ans",
    coordinator: "Reçoit les profils de son association",
    admin: "Envoyez /dashboard pour ouvrir le tableau de bord, /stats pour les chiffres",
  };
  const EMPTY_TEXT = {
    mentee: "Aucun message. Appuyez sur «\u00a0Démarrer\u00a0», comme dans Telegram.",
    mentor: "Aucun message. Appuyez sur «\u00a0Démarrer\u00a0», comme dans Telegram.",
    parent:
      "Pour inscrire un enfant : «\u00a0Démarrer\u00a0». Pour confirmer l'inscription d'un·e " +
      "jeune de moins de 15 ans : cliquez sur le lien que le bot lui a donné, dans son onglet.",
    coordinator: "Les profils envoyés à son association arriveront ici.",
    admin:
      "Écrivez /dashboard : le bot répond avec un lien de connexion au tableau de bord. " +
      "/stats : les chiffres de la semaine et le graphique des abandons.",
  };
  // Tags the emulator rebuilds from Telegram entities; anything else is dropped, as a safety net.
  const ALLOWED_TAGS = new Set([
    "B", "I", "U", "S", "CODE", "PRE", "BLOCKQUOTE", "TG-SPOILER", "A",
  ]);
  const SAFE_LINK = /^(https?:|tg:|mailto:)/i;

  const state = { epoch: null, panes: [], active: null, generation: 0 };
  const $ = (selector, root = document) => root.querySelector(selector);

  // -- HTTP -------------------------------------------------------------------------------

  async function api(path, body, signal) {
    const response = await fetch(path, {
      method: body === undefined ? "GET" : "POST",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    const epoch = response.headers.get("X-Sandbox-Epoch");
    if (epoch !== null && state.epoch !== null && Number(epoch) !== state.epoch) {
      // Someone pressed "Recommencer" in another tab: start over here too.
      restart(Number(epoch));
      throw new DOMException("the sandbox was reset", "AbortError");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.error || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function notice(text) {
    const element = $("#notice");
    element.textContent = text || "";
    element.hidden = !text;
  }

  function toast(text, alert) {
    if (!text) return;
    const element = document.createElement("div");
    element.className = alert ? "toast alert" : "toast";
    element.setAttribute("role", alert ? "alert" : "status");
    element.textContent = text;
    if (alert) {
      const ok = document.createElement("button");
      ok.type = "button";
      ok.textContent = "OK";
      ok.addEventListener("click", () => element.remove());
      element.append(ok);
    } else {
      setTimeout(() => element.remove(), 3500);
    }
    $("#toasts").append(element);
    if (alert) element.querySelector("button").focus();
  }

  // -- rendering --------------------------------------------------------------------------

  // A bot's deep link (https://t.me/<bot>?start=<payload>): Telegram opens the chat and sends
  // /start <payload> from whoever follows it. A parental-consent link is for the parent.
  const DEEP_LINK = /^https:\/\/t\.me\/[A-Za-z0-9_]{5,32}\?start=([A-Za-z0-9_-]{1,64})$/;

  function openDeepLink(pane, payload) {
    const forParent = payload.startsWith("pc_") && pane.persona.role !== "parent";
    const target = (forParent && state.panes.find((p) => p.persona.role === "parent")) || pane;
    if (target !== pane) {
      toast(
        `Lien ouvert par ${target.persona.first_name}, comme si ` +
          `${pane.persona.first_name} le lui avait transféré.`,
        false,
      );
    }
    activate(target, false);
    act(target, "command", { command: "start", payload });
  }

  function safeHtml(html, pane) {
    const template = document.createElement("template");
    template.innerHTML = html;
    for (const element of [...template.content.querySelectorAll("*")]) {
      if (!ALLOWED_TAGS.has(element.tagName)) {
        element.replaceWith(...element.childNodes);
        continue;
      }
      const href = element.tagName === "A" ? element.getAttribute("href") || "" : "";
      for (const attribute of [...element.attributes]) element.removeAttribute(attribute.name);
      const deep = pane ? DEEP_LINK.exec(href) : null;
      if (element.tagName === "A" && deep) {
        element.href = href;
        element.addEventListener("click", (event) => {
          event.preventDefault();
          openDeepLink(pane, deep[1]);
        });
      } else if (element.tagName === "A" && SAFE_LINK.test(href)) {
        element.href = href;
        element.target = "_blank";
        element.rel = "noopener noreferrer";
      }
    }
    return template.content;
  }

  function clock(seconds) {
    const date = new Date(seconds * 1000);
    return date.toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" });
  }

  function photoBody(message) {
    const body = document.createElement("div");
    body.className = "photo";
    const photo = message.photo;
    // Only the emulator's own data: URLs (the page's CSP allows no other image source).
    if (photo.src && photo.src.startsWith("data:image/")) {
      const image = document.createElement("img");
      image.src = photo.src;
      image.width = photo.width;
      image.height = photo.height;
      image.alt = message.caption || "Image envoyée par le bot";
      body.append(image);
    } else {
      const placeholder = document.createElement("div");
      placeholder.className = "text other";
      placeholder.textContent = `(photo ${photo.width}×${photo.height})`;
      body.append(placeholder);
    }
    if (message.caption_html) {
      const caption = document.createElement("div");
      caption.className = "text caption";
      caption.append(safeHtml(message.caption_html));
      body.append(caption);
    }
    return body;
  }

  function fileSize(bytes) {
    if (typeof bytes !== "number") return "";
    if (bytes < 1024) return `${bytes} o`;
    const units = ["Ko", "Mo", "Go"];
    let size = bytes / 1024;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return `${size.toLocaleString("fr-FR", { maximumFractionDigits: 1 })} ${units[unit]}`;
  }

  function documentBody(message) {
    const body = document.createElement("div");
    body.className = "document";
    const file = message.document;
    const name = file.file_name || "document";
    // Only the emulator's own download route: the bot's file, served as an attachment.
    const link = file.url && file.url.startsWith(`${API}/`) ? document.createElement("a") : null;
    const label = link || document.createElement("span");
    label.className = "document-name";
    label.textContent = `📄 ${name}`;
    if (link) {
      link.href = file.url;
      link.download = name;
      link.title = `Télécharger ${name}`;
    }
    body.append(label);
    const details = [file.mime_type, fileSize(file.file_size)].filter(Boolean).join(" · ");
    if (details) {
      const meta = document.createElement("div");
      meta.className = "document-details";
      meta.textContent = details;
      body.append(meta);
    }
    if (message.caption_html) {
      const caption = document.createElement("div");
      caption.className = "text caption";
      caption.append(safeHtml(message.caption_html));
      body.append(caption);
    }
    return body;
  }

  function messageBody(pane, message) {
    if (message.photo) return photoBody(message);
    if (message.document) return documentBody(message);
    const body = document.createElement("div");
    body.className = "text";
    if (message.text !== null && message.text !== undefined) {
      body.append(safeHtml(message.html, pane));
    } else if (message.extra && message.extra.contact) {
      body.textContent = `📱 Numéro partagé : ${message.extra.contact.phone_number}`;
    } else {
      body.textContent = `(${Object.keys(message.extra || {}).join(", ") || "message"})`;
      body.classList.add("other");
    }
    return body;
  }

  function inlineKeyboard(pane, message) {
    const rows = (message.reply_markup && message.reply_markup.inline_keyboard) || [];
    if (!rows.length) return null;
    const keyboard = document.createElement("div");
    keyboard.className = "inline-keyboard";
    for (const row of rows) {
      const line = document.createElement("div");
      line.className = "row";
      for (const button of row) {
        let element;
        if (button.url) {
          element = document.createElement("a");
          element.href = SAFE_LINK.test(button.url) ? button.url : "#";
          element.target = "_blank";
          element.rel = "noopener noreferrer";
        } else {
          element = document.createElement("button");
          element.type = "button";
          if (button.callback_data !== undefined) {
            element.addEventListener("click", () =>
              press(pane, { callback_data: button.callback_data, message_id: message.message_id }),
            );
          } else {
            element.disabled = true;
          }
        }
        element.className = "inline-button";
        element.textContent = button.text;
        line.append(element);
      }
      keyboard.append(line);
    }
    return keyboard;
  }

  function fillMessage(pane, item, message) {
    // A toggle edits the keyboard in place: keep the keyboard user's focus on the same button.
    const focused = item.contains(document.activeElement)
      ? [...item.querySelectorAll(".inline-button")].indexOf(document.activeElement)
      : -1;
    item.replaceChildren();
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    const who = document.createElement("span");
    who.className = "sr-only";
    who.textContent = message.from_bot ? "Bot : " : "Vous : ";
    bubble.append(who, messageBody(pane, message));
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (message.edited ? "modifié " : "") + clock(message.edit_date || message.date);
    bubble.append(meta);
    item.append(bubble);
    const keyboard = inlineKeyboard(pane, message);
    if (keyboard) item.append(keyboard);
    if (focused >= 0) {
      const buttons = item.querySelectorAll(".inline-button");
      if (buttons.length) buttons[Math.min(focused, buttons.length - 1)].focus();
    }
  }

  function applyEvent(pane, event) {
    const message = event.message;
    const key = String(message.message_id);
    let item = pane.items.get(key);
    if (event.kind === "delete") {
      if (item) item.remove();
      pane.items.delete(key);
      return;
    }
    if (!item) {
      if (event.kind !== "new") return;
      item = document.createElement("li");
      item.className = message.from_bot ? "message from-bot" : "message from-person";
      item.dataset.messageId = key;
      pane.list.append(item);
      pane.items.set(key, item);
    }
    fillMessage(pane, item, message);
  }

  function renderReplyKeyboard(pane, keyboard) {
    const signature = keyboard ? JSON.stringify(keyboard) : "";
    if (signature !== pane.keyboardSignature) {
      pane.keyboardSignature = signature;
      pane.keyboardOpen = Boolean(keyboard);
      const box = pane.replyKeyboard;
      box.replaceChildren();
      for (const row of (keyboard && keyboard.keyboard) || []) {
        const line = document.createElement("div");
        line.className = "row";
        for (const button of row) {
          const element = document.createElement("button");
          element.type = "button";
          element.className = "reply-button";
          element.textContent = button.text;
          element.addEventListener("click", () => pressReply(pane, keyboard, button));
          line.append(element);
        }
        box.append(line);
      }
      pane.input.placeholder = (keyboard && keyboard.input_field_placeholder) || "Écrire un message…";
    }
    pane.replyKeyboard.hidden = !(keyboard && pane.keyboardOpen);
    pane.keyboardToggle.hidden = !keyboard;
    pane.keyboardToggle.setAttribute("aria-expanded", String(Boolean(keyboard && pane.keyboardOpen)));
  }

  function refreshEmpty(pane) {
    pane.empty.hidden = pane.items.size > 0;
  }

  function isAtEnd(pane) {
    const list = pane.list;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  // -- acting -----------------------------------------------------------------------------

  async function act(pane, path, body) {
    try {
      return await api(`${API}/${pane.persona.id}/${path}`, body);
    } catch (error) {
      if (error.name !== "AbortError") toast(`Impossible : ${error.message}`, false);
      return null;
    }
  }

  async function press(pane, body) {
    if (await act(pane, "press", body)) watchToasts(pane);
  }

  async function pressReply(pane, keyboard, button) {
    let sent;
    if (button.request_contact) sent = await act(pane, "contact", {});
    else if (button.request_location) sent = await act(pane, "press", { text: button.text });
    else sent = await act(pane, "text", { text: button.text });
    if (sent && keyboard.one_time_keyboard) {
      pane.keyboardOpen = false;
      renderReplyKeyboard(pane, keyboard);
    }
    pane.input.focus();
  }

  async function send(pane) {
    const text = pane.input.value.trim();
    if (!text) return;
    pane.input.value = "";
    const command = /^\/([A-Za-z0-9_]+)(?:@\S+)?(?:\s+(.*))?$/s.exec(text);
    const sent = command
      ? await act(pane, "command", { command: command[1], payload: command[2] || null })
      : await act(pane, "text", { text });
    if (!sent) pane.input.value = text;
  }

  // The bot answers a button press (answerCallbackQuery) a moment after it: look a few times.
  async function watchToasts(pane) {
    const generation = state.generation;
    for (let attempt = 0; attempt < 12 && generation === state.generation; attempt += 1) {
      if (await pullToasts(pane)) return;
      await sleep(250);
    }
  }

  async function pullToasts(pane) {
    try {
      const data = await api(`${API}/${pane.persona.id}/toasts?after=${pane.toastCursor}`);
      const fresh = data.cursor > pane.toastCursor;
      pane.toastCursor = data.cursor;
      for (const item of data.toasts) toast(item.text, item.show_alert);
      return fresh;
    } catch {
      return false;
    }
  }

  // -- long polling -----------------------------------------------------------------------

  async function follow(pane, generation) {
    let failures = 0;
    while (generation === state.generation) {
      const path = `${API}/${pane.persona.id}/messages?after=${pane.cursor}&timeout=${POLL_SECONDS}`;
      try {
        const data = await api(path, undefined, pane.abort.signal);
        if (generation !== state.generation) return;
        // Follow the conversation unless the person scrolled up to read older messages.
        const follows = isAtEnd(pane) || data.events.some((e) => !e.message.from_bot);
        for (const event of data.events) applyEvent(pane, event);
        pane.cursor = data.cursor;
        renderReplyKeyboard(pane, data.reply_keyboard);
        refreshEmpty(pane);
        if (follows) pane.list.scrollTop = pane.list.scrollHeight;
        if (failures) notice("");
        failures = 0;
      } catch (error) {
        if (error.name === "AbortError" || generation !== state.generation) return;
        if (error.status === 404) {
          // The sandbox was reset (or restarted) since this chat was opened.
          await createUser(pane.persona).catch(() => sleep(1000));
          continue;
        }
        failures += 1;
        if (failures > 1) notice("Le bac à sable ne répond pas ; nouvelle tentative…");
        await sleep(Math.min(1000 * failures, 5000));
      }
    }
  }

  function language() {
    return localStorage.getItem(LANGUAGE_KEY) || "fr";
  }

  function createUser(persona) {
    return api(API, {
      user_id: persona.id,
      first_name: persona.first_name,
      language_code: language(),
    });
  }

  // -- panes and tabs ---------------------------------------------------------------------

  function buildPane(persona, index) {
    const section = $("#pane-template").content.firstElementChild.cloneNode(true);
    section.id = `pane-${persona.id}`;
    section.dataset.role = persona.role;
    section.setAttribute("aria-labelledby", `tab-${persona.id}`);
    $(".avatar", section).textContent = persona.first_name.slice(0, 1);
    $(".pane-title", section).textContent = `${persona.first_name} · ${persona.label}`;
    $(".pane-role", section).textContent = ROLE_TEXT[persona.role] || "";
    const list = $(".messages", section);
    list.setAttribute("aria-label", `Conversation de ${persona.first_name} avec le bot`);
    $(".empty-text", section).textContent = EMPTY_TEXT[persona.role] || "";
    const input = $(".text", section);
    input.id = `text-${persona.id}`;
    $(".composer label", section).htmlFor = input.id;
    $(".composer label", section).textContent = `Message de ${persona.first_name}`;

    const pane = {
      persona,
      index,
      section,
      list,
      input,
      empty: $(".empty", section),
      replyKeyboard: $(".reply-keyboard", section),
      keyboardToggle: $(".keyboard-toggle", section),
      items: new Map(),
      cursor: 0,
      toastCursor: 0,
      keyboardSignature: "",
      keyboardOpen: false,
      abort: new AbortController(),
    };
    const start = $(".start", section);
    if (persona.start_payload === null) start.remove();
    else start.addEventListener("click", () =>
      act(pane, "command", { command: "start", payload: persona.start_payload }));
    $(".composer", section).addEventListener("submit", (event) => {
      event.preventDefault();
      send(pane);
    });
    pane.keyboardToggle.addEventListener("click", () => {
      pane.keyboardOpen = !pane.keyboardOpen;
      pane.replyKeyboard.hidden = !pane.keyboardOpen;
      pane.keyboardToggle.setAttribute("aria-expanded", String(pane.keyboardOpen));
    });
    section.addEventListener("focusin", () => activate(pane, false));
    return pane;
  }

  function buildTab(pane) {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.id = `tab-${pane.persona.id}`;
    tab.className = "tab";
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", pane.section.id);
    tab.textContent = pane.persona.label;
    tab.addEventListener("click", () => activate(pane, true));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const count = state.panes.length;
      const next = state.panes[(pane.index + step + count) % count];
      activate(next, false);
      next.tab.focus();
    });
    pane.tab = tab;
    return tab;
  }

  function activate(pane, focusInput) {
    if (state.active !== pane) {
      // On a medium screen the pane left behind stays beside the new one (at first, the next).
      const count = state.panes.length;
      const previous = state.active || state.panes[(pane.index + 1) % count];
      state.active = pane;
      for (const other of state.panes) {
        const selected = other === pane;
        other.section.classList.toggle("is-active", selected);
        other.section.classList.toggle("is-second", !selected && other === previous);
        other.tab.setAttribute("aria-selected", String(selected));
        other.tab.tabIndex = selected ? 0 : -1;
      }
    }
    if (focusInput) pane.input.focus();
  }

  function startPanes(generation) {
    for (const pane of state.panes) {
      pane.abort = new AbortController();
      follow(pane, generation);
    }
  }

  function clearPanes() {
    for (const pane of state.panes) {
      pane.abort.abort();
      pane.list.replaceChildren();
      pane.items.clear();
      pane.cursor = 0;
      pane.toastCursor = 0;
      pane.keyboardSignature = "";
      renderReplyKeyboard(pane, null);
      refreshEmpty(pane);
    }
  }

  async function restart(epoch) {
    state.generation += 1;
    state.epoch = epoch;
    const generation = state.generation;
    clearPanes();
    await Promise.all(state.panes.map((pane) => createUser(pane.persona).catch(() => null)));
    if (generation === state.generation) startPanes(generation);
  }

  async function reset(button) {
    const ok = window.confirm(
      "Tout effacer et recommencer ? Les conversations et la base du bac à sable seront vidées.",
    );
    if (!ok) return;
    button.disabled = true;
    notice("Remise à zéro…");
    state.generation += 1;
    for (const pane of state.panes) pane.abort.abort();
    try {
      const data = await api("/sandbox/reset", {});
      await restart(data.epoch);
      notice("");
    } catch (error) {
      notice(`La remise à zéro a échoué : ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async function main() {
    const select = $("#language");
    select.value = language();
    select.addEventListener("change", () => {
      localStorage.setItem(LANGUAGE_KEY, select.value);
      notice("La langue s'appliquera après «\u00a0Recommencer\u00a0».");
    });
    $("#reset").addEventListener("click", (event) => reset(event.currentTarget));

    let data;
    for (;;) {
      try {
        data = await api("/sandbox/api/personas");
        break;
      } catch {
        notice("Le bac à sable démarre…");
        await sleep(1000);
      }
    }
    notice("");
    state.panes = data.personas.map(buildPane);
    for (const pane of state.panes) {
      $("#tabs").append(buildTab(pane));
      $("#panes").append(pane.section);
    }
    activate(state.panes[0], false);
    await restartKeepingChats(data.epoch);
    document.body.dataset.ready = "true";
  }

  // On a page load the chats are replayed from the emulator: nothing is cleared.
  async function restartKeepingChats(epoch) {
    state.epoch = epoch;
    const generation = state.generation;
    await Promise.all(state.panes.map((pane) => createUser(pane.persona).catch(() => null)));
    startPanes(generation);
  }

  document.addEventListener("DOMContentLoaded", main);
})();
