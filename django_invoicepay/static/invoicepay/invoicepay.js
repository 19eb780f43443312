/*!
 * django-invoicepay widgets: keeps {% invoicepay_deposit %}, {% invoicepay_qr %} and
 * {% invoicepay_attrs %} elements up to date through the payer API and drives their controls.
 *
 * Load it with {% invoicepay_scripts %} (which also renders the translated <template> snippets
 * this script fills in). No framework, no build step, no eval, no inline script or handlers:
 * it works under `Content-Security-Policy: script-src 'self'`. Documented in docs/template-tags.md.
 */
(function () {
  "use strict";

  // Browsers this script cannot serve keep the server-rendered page and its "Reload" hint.
  if (!window.fetch || !window.URL || !window.Map || !("content" in document.createElement("template"))) return;

  // The statuses it decides by, from the server's InvoiceStatus (JSON that {% invoicepay_scripts %} renders).
  var statusData = document.getElementById("invoicepay-statuses");
  if (!statusData) return; // the page's own markup and its "Reload" hint stay
  var STATUS = JSON.parse(statusData.getAttribute("data-statuses"));
  var ACTIONS = { processor: "processor/", payer: "payer/", otp: "otp/", "otp/resend": "otp/resend/", renew: "renew/" };
  var DEFAULT_INTERVAL = 5000; // ms between checks while the page is visible and something may change
  var QUIET_GROWTH = 1.25; // each check that finds nothing new waits this much longer...
  var QUIET_CAP = 6; // ...up to this many intervals
  var HIDDEN_INTERVAL = 60000; // at least this long while the tab is hidden
  var MAX_ERROR_DELAY = 300000; // failed checks back off exponentially up to this
  var groups = new Map(); // absolute API URL -> Group (every element showing that invoice)

  // -- small helpers ------------------------------------------------------------------------------

  function scopeOf(element) {
    return element.closest("[data-invoicepay-api]");
  }

  /** Elements of `scope` matching `selector` that do not belong to a nested scope. */
  function own(scope, selector) {
    return Array.prototype.filter.call(scope.querySelectorAll(selector), function (el) {
      return scopeOf(el) === scope;
    });
  }

  function part(root, name) {
    return own(root, '[data-invoicepay-part="' + name + '"]')[0] || null;
  }

  function normalise(text) {
    return (text || "").replace(/\s+/g, " ").trim();
  }

  function emit(target, name, detail, cancelable) {
    var event = new CustomEvent(name, { bubbles: true, cancelable: !!cancelable, detail: detail });
    (target || document).dispatchEvent(event);
    return event;
  }

  function cookie(name) {
    var found = document.cookie.split(";").map(function (c) { return c.trim(); }).filter(function (c) {
      return c.indexOf(name + "=") === 0;
    })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  /** A copy of the server-translated <template data-invoicepay-template=name>, {placeholders} filled. */
  function snippet(name, values, count) {
    var templates = document.querySelectorAll('template[data-invoicepay-template="' + name + '"]');
    var template = Array.prototype.filter.call(templates, function (t) {
      return count === undefined || t.getAttribute("data-count") === String(count);
    })[0];
    if (!template) return null;
    var fragment = template.content.cloneNode(true);
    var walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT);
    var texts = [];
    while (walker.nextNode()) texts.push(walker.currentNode);
    texts.forEach(function (node) {
      node.nodeValue = node.nodeValue.replace(/\{(\w+)\}/g, function (match, key) {
        return values && Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
      });
    });
    return fragment;
  }

  function snippetText(name) {
    var fragment = snippet(name);
    return fragment ? normalise(fragment.textContent) : "";
  }

  /** An invoice status in words, as the server translated it (<template data-invoicepay-template="status">). */
  function statusLabel(status) {
    var templates = document.querySelectorAll('template[data-invoicepay-template="status"]');
    var template = Array.prototype.filter.call(templates, function (t) {
      return t.getAttribute("data-status") === status;
    })[0];
    var text = template ? normalise(template.content.textContent) : "";
    return text || status;
  }

  /** Put `fragment` in `element` unless it says the same (no needless announcements to screen readers). */
  function replace(element, fragment) {
    var next = document.createElement("div");
    next.appendChild(fragment);
    var same = normalise(next.textContent) === normalise(element.textContent) &&
      next.querySelectorAll("a, button").length === element.querySelectorAll("a, button").length;
    if (!same) element.replaceChildren.apply(element, Array.prototype.slice.call(next.childNodes));
  }

  function money(value) {
    return value && value.display ? value.display : "";
  }

  function qrIdOf(uri) {
    var match = /[?&]qr_id=([^&#]*)/.exec(uri || "");
    return match ? decodeURIComponent(match[1]) : "";
  }

  function fingerprint(data) {
    return JSON.stringify([
      data.status, data.reference, data.renewed_by, data.scan_to_pay_uri,
      data.outstanding && data.outstanding.minor, data.overpaid_by && data.overpaid_by.minor,
      data.primary_quote && data.primary_quote.processor,
      (data.pending_transactions || []).map(function (t) { return [t.hash, t.confirmations, t.amount && t.amount.minor]; }),
      (data.refunds || []).map(function (r) { return [r.status, r.amount && r.amount.minor]; }),
    ]);
  }

  // -- rendering an invoice's JSON (GET api/invoices/<token>/) into the page --------------------------

  var FIELDS = {
    status: function (d) { return statusLabel(d.status); },
    reference: function (d) { return d.reference; },
    amount: function (d) { return money(d.amount); },
    outstanding: function (d) { return money(d.outstanding); },
    "overpaid-by": function (d) { return money(d.overpaid_by); },
  };

  function renderFields(scope, data) {
    own(scope, "[data-invoicepay-field]").forEach(function (el) {
      var name = el.getAttribute("data-invoicepay-field");
      var value = FIELDS[name] ? FIELDS[name](data) : undefined;
      if (value === undefined || value === null) return;
      if (el.textContent !== String(value)) el.textContent = value;
      if (name === "outstanding" && el.hasAttribute("data-copy") && data.outstanding) {
        el.setAttribute("data-copy", data.outstanding.amount);
      }
    });
    own(scope, "[data-invoicepay-when]").forEach(function (el) {
      var when = el.getAttribute("data-invoicepay-when").split(/\s+/);
      var show = when.indexOf(data.status) !== -1 || (when.indexOf("open") !== -1 && !data.is_final) ||
        (when.indexOf("final") !== -1 && data.is_final);
      el.hidden = !show;
    });
  }

  function renewedSnippet(name, data, group) {
    var fragment = snippet(name, { token: data.renewed_by });
    if (!fragment) return null;
    var link = fragment.querySelector("[data-invoicepay-renewed]");
    var url = group.pageUrl(data.renewed_by);
    if (link && url) link.setAttribute("href", url);
    else if (link) (link.closest(".invoicepay-renewed") || link).remove();
    return fragment;
  }

  /** The deposit widget's state area: final states, underpaid, or "choose how to pay". */
  function stateSnippet(data, group) {
    if (STATUS.paid.indexOf(data.status) !== -1) return snippet("paid");
    if (data.status === STATUS.overpaid) {
      var fragment = snippet("overpaid", { extra: money(data.overpaid_by) });
      var slot = fragment && fragment.querySelector('[data-invoicepay-part="refunds"]');
      if (slot && data.refunds && data.refunds.length) {
        var lines = data.refunds.map(function (refund) {
          var name = refund.status === "complete" ? "refund-complete" : refund.status === "failed" ? "refund-failed" : "refund-requested";
          return snippet(name, { amount: money(refund.amount) });
        });
        if (lines.indexOf(null) !== -1) return null;
        slot.replaceChildren();
        lines.forEach(function (line, index) {
          if (index) slot.appendChild(document.createTextNode(" "));
          slot.appendChild(line);
        });
      }
      return fragment;
    }
    if (data.status === STATUS.expired) return data.renewed_by ? renewedSnippet("expired-renewed", data, group) : snippet("expired");
    if (STATUS.closed.indexOf(data.status) !== -1) return snippet("closed", { status: statusLabel(data.status) });
    if (!data.primary_quote) return snippet("choose");
    if (data.status === STATUS.underpaid) return snippet("underpaid", { owed: money(data.outstanding) });
    return document.createDocumentFragment();
  }

  function pendingSnippet(data) {
    var txs = data.pending_transactions || [];
    if (!txs.length) return snippet("waiting");
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < txs.length; i++) {
      var tx = txs[i];
      var confirmations = tx.confirmations || 0;
      var line = tx.hash ? snippet("pending-hash", { hash: tx.hash }, confirmations) : snippet("pending-amount", { amount: money(tx.amount) });
      if (!line) return null; // e.g. a count without a translated snippet: the server renders it
      if (line.firstElementChild) line.firstElementChild.setAttribute("data-confirmations", String(confirmations));
      fragment.appendChild(line);
    }
    return fragment;
  }

  /** False when only the server can draw the new state (a new way to pay, a new QR code). */
  function renderDeposit(root, data, group) {
    var quote = data.primary_quote ? data.primary_quote.processor : "";
    if (!data.is_final && quote !== (root.getAttribute("data-invoicepay-quote") || "")) return false;
    var state = part(root, "state");
    var details = part(root, "details");
    var next = stateSnippet(data, group);
    if (state && !next) return false;
    if (data.is_final) {
      if (details) details.remove();
    } else {
      var pending = part(root, "pending");
      var lines = pending ? pendingSnippet(data) : null;
      if (pending && !lines) return false;
      if (pending) replace(pending, lines);
    }
    if (state) replace(state, next);
    return true;
  }

  function renderQr(root, data, group) {
    var message = own(root, "[data-invoicepay-message]")[0];
    var next;
    if (data.is_final) {
      if (data.status !== STATUS.expired) next = snippet("qr-final", { status: statusLabel(data.status) });
      else next = data.renewed_by ? renewedSnippet("qr-final-renewed", data, group) : snippet("qr-final-expired");
    } else {
      if (qrIdOf(data.scan_to_pay_uri) !== (root.getAttribute("data-invoicepay-qr-id") || "")) return false;
      if (!root.querySelector(".invoicepay-qr-final")) return true; // the code (or "choose...") is still right
      next = snippet("qr-choose"); // a renewed invoice shown in place of the expired one
    }
    if (!next) return false;
    var holder = document.createElement("div");
    holder.appendChild(next);
    var shown = root.querySelector(".invoicepay-qr-final, .invoicepay-qr-choose");
    var fresh = holder.querySelector(".invoicepay-qr-final, .invoicepay-qr-choose");
    if (shown && fresh && normalise(shown.textContent) === normalise(fresh.textContent) &&
        root.querySelectorAll("a, button").length === holder.querySelectorAll("a, button").length) return true;
    if (message) holder.appendChild(message);
    root.replaceChildren.apply(root, Array.prototype.slice.call(holder.childNodes));
    return true;
  }

  function render(scope, data, group) {
    scope.setAttribute("data-invoicepay-status", data.status);
    scope.setAttribute("data-invoicepay-final", data.is_final ? "true" : "false");
    if (scope.hasAttribute("data-status")) scope.setAttribute("data-status", data.status);
    renderFields(scope, data);
    var widget = scope.getAttribute("data-invoicepay-widget");
    if (widget === "deposit") return renderDeposit(scope, data, group);
    if (widget === "qr") return renderQr(scope, data, group);
    return true;
  }

  /** The server renders what the script cannot: reload, once per state (never in a loop). */
  function reloadFor(group, print) {
    var key = "invoicepay:reloaded:" + group.api;
    try {
      if (window.sessionStorage.getItem(key) === print) return;
      window.sessionStorage.setItem(key, print);
    } catch (e) {
      return; // no storage: rather a stale widget than a reload loop
    }
    if (!emit(group.scopes[0], "invoicepay:reload", { invoice: group.data }, true).defaultPrevented) {
      window.location.reload();
    }
  }

  // -- one invoice: its elements and its polling ------------------------------------------------------

  function Group(api) {
    this.api = api;
    this.scopes = [];
    this.timer = 0;
    this.running = false;
    this.inflight = false;
    this.quiet = 0;
    this.failures = 0;
    this.print = null;
    this.data = null;
  }

  Group.prototype.add = function (scope) {
    if (this.scopes.indexOf(scope) === -1) this.scopes.push(scope);
  };

  Group.prototype.attr = function (name) {
    for (var i = 0; i < this.scopes.length; i++) {
      var value = this.scopes[i].getAttribute(name);
      if (value) return value;
    }
    return "";
  };

  Group.prototype.token = function () {
    return this.attr("data-invoicepay-token");
  };

  Group.prototype.interval = function () {
    var values = this.scopes.map(function (s) { return parseInt(s.getAttribute("data-invoicepay-interval"), 10); })
      .filter(function (n) { return n > 0; });
    return values.length ? Math.max(250, Math.min.apply(Math, values)) : DEFAULT_INTERVAL;
  };

  Group.prototype.refresh = function () {
    return !this.scopes.every(function (s) { return s.getAttribute("data-invoicepay-refresh") === "false"; });
  };

  Group.prototype.pageUrl = function (token) {
    var template = this.attr("data-invoicepay-pay-url");
    return template ? template.replace(/\{token\}|%7Btoken%7D/gi, encodeURIComponent(token)) : "";
  };

  Group.prototype.isFinal = function () {
    if (this.data) return !!this.data.is_final;
    var status = this.attr("data-invoicepay-status");
    return this.attr("data-invoicepay-final") === "true" || STATUS.final.indexOf(status) !== -1;
  };

  /** "live": polling (say so); "reload": not polling (ask for a reload); "off": final, nothing to say. */
  Group.prototype.hints = function (mode) {
    this.scopes.forEach(function (scope) {
      scope.setAttribute("data-invoicepay-polling", mode === "live" ? "on" : "off");
      own(scope, '[data-invoicepay-part="live"]').forEach(function (el) { el.hidden = mode !== "live"; });
      own(scope, '[data-invoicepay-part="reload"]').forEach(function (el) { el.hidden = mode !== "reload"; });
    });
  };

  Group.prototype.start = function () {
    if (this.isFinal()) {
      this.running = false;
      this.hints("off");
      return;
    }
    this.running = true;
    this.hints("live");
    this.schedule(this.interval());
  };

  Group.prototype.stop = function (mode) {
    this.running = false;
    clearTimeout(this.timer);
    this.hints(mode);
  };

  Group.prototype.schedule = function (delay) {
    clearTimeout(this.timer);
    if (!this.running) return;
    if (document.hidden) delay = Math.max(delay, HIDDEN_INTERVAL);
    var self = this;
    this.timer = setTimeout(function () { self.poll(); }, delay);
  };

  Group.prototype.nextDelay = function () {
    var interval = this.interval();
    if (this.failures) return Math.min(interval * Math.pow(2, this.failures), MAX_ERROR_DELAY);
    return Math.min(interval * Math.pow(QUIET_GROWTH, this.quiet), interval * QUIET_CAP);
  };

  Group.prototype.poll = function () {
    if (this.inflight || !this.running) return;
    var self = this;
    var url = new URL(this.api, document.baseURI);
    if (this.refresh()) url.searchParams.set("refresh", "1");
    var wait = 0;
    this.inflight = true;
    fetch(url.href, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          self.stop("reload"); // gone, or no longer this visitor's: stop asking
          return null;
        }
        if (!response.ok) {
          self.failures += 1;
          wait = (parseInt(response.headers.get("Retry-After"), 10) || 0) * 1000;
          return null;
        }
        return response.json().then(function (data) {
          self.failures = 0;
          self.update(data);
        });
      })
      .catch(function () {
        self.failures += 1; // offline for a moment: try again later
      })
      .then(function () {
        self.inflight = false;
        if (self.running) self.schedule(Math.max(self.nextDelay(), wait));
      });
  };

  /** Show `data` (the API's invoice) everywhere this invoice appears; stop once it is final. */
  Group.prototype.update = function (data, force) {
    if (!data || typeof data.status !== "string" || data.token !== this.token()) return;
    var print = fingerprint(data);
    this.data = data;
    if (print === this.print && !force) {
      this.quiet += 1;
      return;
    }
    this.quiet = 0;
    this.print = print;
    var self = this;
    var complete = this.scopes.map(function (scope) { return render(scope, data, self); });
    if (data.is_final) this.stop("off");
    else this.hints(this.running ? "live" : "reload");
    emit(this.scopes[0], "invoicepay:update", { invoice: data });
    if (complete.indexOf(false) !== -1) reloadFor(this, print);
  };

  /** After "Create a new invoice" without a page to go to: show the new invoice here. */
  Group.prototype.switchTo = function (data) {
    var api = this.api.split(this.token()).join(data.token);
    this.stop("off");
    groups.delete(this.api);
    var next = groupFor(api);
    this.scopes.forEach(function (scope) {
      scope.setAttribute("data-invoicepay-api", api);
      scope.setAttribute("data-invoicepay-token", data.token);
      if (!part(scope, "details")) scope.removeAttribute("data-invoicepay-quote");
      if (scope.querySelector(".invoicepay-qr-final")) scope.setAttribute("data-invoicepay-qr-id", "");
      next.add(scope);
    });
    next.update(data, true);
    next.start();
  };

  function groupFor(api) {
    var key = new URL(api, document.baseURI).href;
    if (!groups.has(key)) groups.set(key, new Group(key));
    return groups.get(key);
  }

  function groupOf(scope) {
    return groupFor(scope.getAttribute("data-invoicepay-api"));
  }

  // -- controls: renew, choose a way to pay, payer and OTP forms ----------------------------------

  function csrfToken(scope) {
    var holder = scope.closest("[data-invoicepay-csrf]") || document.querySelector("[data-invoicepay-csrf]");
    if (holder) return holder.getAttribute("data-invoicepay-csrf");
    var named = document.querySelector("[data-invoicepay-csrf-cookie]");
    return cookie(named ? named.getAttribute("data-invoicepay-csrf-cookie") : "csrftoken");
  }

  function messageSlot(scope) {
    for (var s = scope; s; s = s.parentElement && scopeOf(s.parentElement)) {
      var slot = own(s, "[data-invoicepay-message]")[0];
      if (slot) return slot;
    }
    return scope.querySelector("[data-invoicepay-message]");
  }

  function showMessage(scope, text, isError) {
    var slot = messageSlot(scope);
    if (!slot) return;
    slot.textContent = text || "";
    slot.hidden = !text;
    slot.classList.toggle("invoicepay-error", !!(text && isError));
  }

  function errorSlots(scope, form) {
    var slots = own(scope, "[data-invoicepay-error]");
    if (form) slots = Array.prototype.slice.call(form.querySelectorAll("[data-invoicepay-error]")).concat(slots);
    return slots;
  }

  function showErrors(scope, form, body) {
    var slots = errorSlots(scope, form);
    var unplaced = [];
    Object.keys(body || {}).forEach(function (field) {
      var errors = body[field];
      var text = Array.isArray(errors) ? errors.join(" ") : typeof errors === "string" ? errors : "";
      if (!text) return;
      var slot = field === "detail" ? null : slots.filter(function (el) {
        return el.getAttribute("data-invoicepay-error") === field;
      })[0];
      if (slot) slot.textContent = text;
      else unplaced.push(text);
    });
    showMessage(scope, unplaced.join(" "), unplaced.length > 0);
  }

  function renewed(group, data) {
    var old = group.token();
    var url = group.pageUrl(data.token);
    if (!url && old && window.location.href.indexOf(old) !== -1) url = window.location.href.split(old).join(data.token);
    if (url) {
      window.location.assign(url);
      return true;
    }
    group.switchTo(data);
    return false;
  }

  function act(scope, action, body, control, form) {
    var path = ACTIONS[action];
    if (!path || control.getAttribute("aria-busy") === "true") return;
    var group = groupOf(scope);
    var buttons = form ? Array.prototype.slice.call(form.querySelectorAll("button, input[type=submit]")) : [control];
    buttons.forEach(function (b) { b.disabled = true; });
    control.setAttribute("aria-busy", "true");
    errorSlots(scope, form).forEach(function (el) { el.textContent = ""; });
    // Both texts come translated from {% invoicepay_scripts %}: no unreachable shop vs. an answer that is no use.
    var offline = snippetText("network-error") || snippetText("error");
    var failed = snippetText("error") || offline;
    var reached = false;
    var ok = false;
    var status = 0;
    fetch(new URL(path, group.api).href, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken(scope) },
      body: JSON.stringify(body || {}),
    })
      .then(function (response) {
        reached = true;
        ok = response.ok;
        status = response.status;
        return response.json().catch(function () { return null; });
      })
      .catch(function () { return null; })
      .then(function (data) {
        buttons.forEach(function (b) { b.disabled = false; });
        control.removeAttribute("aria-busy");
        if (!data || typeof data !== "object") {
          showMessage(scope, reached ? failed : offline, true);
          return;
        }
        if (!ok) {
          showErrors(scope, form, status === 403 && !data.detail ? { detail: failed } : data);
          return;
        }
        var done = emit(form || control, "invoicepay:done", { action: action, response: data }, true);
        if (action === "renew") {
          if (!done.defaultPrevented && data.token) {
            if (renewed(group, data)) buttons.forEach(function (b) { b.disabled = true; });
            else showMessage(scope, snippetText("renewed"), false);
          }
          return;
        }
        showMessage(scope, data.detail || "", false);
        if (action === "processor" && !done.defaultPrevented) {
          window.location.reload(); // the chosen way to pay has details only the server can draw
          return;
        }
        if (data.token && data.status) {
          group.update(data);
          if (!data.is_final && !group.running) group.start();
        }
        if (done.defaultPrevented) return;
        if (action === "payer") {
          var next = own(scope, '[data-invoicepay-after="payer"]');
          next.forEach(function (el) { el.hidden = false; });
          var input = next.length && next[0].querySelector("input");
          if (input) input.focus();
        }
      });
  }

  document.addEventListener("click", function (event) {
    var control = event.target.closest && event.target.closest("[data-invoicepay-renew], [data-invoicepay-post]");
    var scope = control && scopeOf(control);
    if (!scope) return;
    event.preventDefault();
    var action = control.hasAttribute("data-invoicepay-renew") ? "renew" : control.getAttribute("data-invoicepay-post");
    var body = {};
    if (control.name) body[control.name] = control.value;
    act(scope, action, body, control, null);
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest && event.target.closest("form[data-invoicepay-form]");
    var scope = form && scopeOf(form);
    if (!scope) return;
    event.preventDefault();
    var body = {};
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string") body[name] = value;
    });
    act(scope, form.getAttribute("data-invoicepay-form"), body, form, form);
  });

  // -- start, and check at once when the payer comes back to the tab -------------------------------

  /** Find the widgets (again, after adding some to the page: `window.invoicepay.scan()`). */
  function scan() {
    var found = [];
    Array.prototype.forEach.call(document.querySelectorAll("[data-invoicepay-api]"), function (scope) {
      var group = groupOf(scope);
      group.add(scope);
      if (found.indexOf(group) === -1) found.push(group);
    });
    found.forEach(function (group) {
      if (group.running) group.hints("live");
      else group.start();
    });
  }

  function wake() {
    groups.forEach(function (group) {
      if (group.running && !document.hidden) {
        group.quiet = 0;
        group.schedule(0);
      }
    });
  }

  document.addEventListener("visibilitychange", wake);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) wake();
  });
  window.invoicepay = { scan: scan };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
