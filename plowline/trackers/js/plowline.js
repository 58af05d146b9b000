/*!
 * plowline.js: Plowline's browser tracker. No dependencies; ES2017.
 *
 * It speaks the Snowplow tracker protocol (spec/protocol.md sections 1 and 2): POST batches of
 * payload_data 1-0-4 to /com.snowplowanalytics.snowplow/tp2 (or one GET /i per event), so any
 * Snowplow collector and enrich accept its events, and Plowline's collector serves this file at
 * /plowline.js.
 *
 * Loader snippet (commands are queued until the script has loaded):
 *
 *   <script>
 *   (function(w,d,s,u,n){w[n]=w[n]||function(){(w[n].q=w[n].q||[]).push(arguments)};
 *   var e=d.createElement(s),f=d.getElementsByTagName(s)[0];e.async=1;e.src=u;
 *   f.parentNode.insertBefore(e,f)})(window,document,'script','https://collector.example/plowline.js','plowline');
 *   plowline('newTracker', 'sp', 'https://collector.example', { appId: 'my-site' });
 *   plowline('enableActivityTracking', { minimumVisitLength: 10, heartbeatDelay: 10 });
 *   plowline('trackPageView');
 *   </script>
 *
 * A command goes to every tracker, or to the ones named after a colon: plowline('trackPageView:sp;sp2').
 * A function as the command is called with the trackers by name: plowline(function (t) { t.sp.getDomainUserId(); }).
 * The global's name is 'plowline' unless window.PlowlineGlobalName says otherwise (set it before the snippet).
 *
 * Identity: a first-party cookie `_sp_id.<hash>` holds `domain_userid.created.session_index.last_event_ms.session_id`;
 * a session ends after `sessionCookieTimeout` seconds without events. `stateStorageStrategy`: 'cookieAndLocalStorage'
 * (default: ids in the cookie, unsent events in localStorage), 'cookie' (unsent events in memory only),
 * 'localStorage' (no cookie), 'none' (cookieless: nothing stored, no duid/sid/vid sent). `anonymousTracking: true`
 * sends no duid/sid/vid/uid and adds `SP-Anonymous: *`, so the collector stores no IP and no network user id.
 *
 * Delivery: every event is stored until the collector acknowledges it; failed requests are retried with
 * exponential backoff (`retryBaseMs` doubling up to `retryMaxMs`, never on 400/401/403/410/422); when the page is
 * hidden the rest goes out with fetch keepalive (sendBeacon where keepalive is missing); events left unsent are
 * sent by the next page of the site. Delivery is at least once: an event in flight when its page closed may be
 * sent again, and Plowline's loaders drop the copy (same event_id and fingerprint).
 */
(function (window, document, navigator) {
  'use strict';

  const VERSION = '0.1.0';
  const TRACKER_VERSION = 'plowline-js-' + VERSION;

  const SP = 'iglu:com.snowplowanalytics.snowplow/';
  const PAYLOAD_DATA = SP + 'payload_data/jsonschema/1-0-4';
  const CONTEXTS = SP + 'contexts/jsonschema/1-0-0';
  const UNSTRUCT_EVENT = SP + 'unstruct_event/jsonschema/1-0-0';
  const WEB_PAGE = SP + 'web_page/jsonschema/1-0-0';
  const LINK_CLICK = SP + 'link_click/jsonschema/1-0-1';
  const FOCUS_FORM = SP + 'focus_form/jsonschema/1-0-0';
  const CHANGE_FORM = SP + 'change_form/jsonschema/1-0-0';
  const SUBMIT_FORM = SP + 'submit_form/jsonschema/1-0-0';
  const TP2_PATH = '/com.snowplowanalytics.snowplow/tp2';
  const GET_PATH = '/i';
  const POST_CONTENT_TYPE = 'application/json; charset=UTF-8';
  // As Snowplow's tracker: these answers mean a resend cannot succeed, so the events are dropped.
  const NO_RETRY_STATUSES = [400, 401, 403, 410, 422];
  // Browsers refuse keepalive requests once the in-flight keepalive bodies exceed 64 KiB.
  const KEEPALIVE_BUDGET = 60000;
  // The envelope around the events of a POST body, counted against maxPostBytes as Snowplow does.
  const ENVELOPE_BYTES = 88;
  // The input types the form schemas allow in `type`/`elementType`; any other element type is sent as null.
  const FORM_TYPES = ['button', 'checkbox', 'color', 'date', 'datetime', 'datetime-local', 'email', 'file', 'hidden',
    'image', 'month', 'number', 'password', 'radio', 'range', 'reset', 'search', 'submit', 'tel', 'text', 'time', 'url',
    'week'];
  const FORM_NODES = ['INPUT', 'TEXTAREA', 'SELECT'];
  // A stored queue whose page has not refreshed it for this long is taken over by another page of the site
  // (a crashed tab's). Browsers run a hidden tab's timers as rarely as once a minute, hence the margin.
  const STALE_QUEUE_MS = 180000;
  const QUEUE_REFRESH_MS = 10000;
  const ACTIVITY_EVENTS = ['click', 'mousedown', 'mousemove', 'keydown', 'keyup', 'touchstart', 'wheel', 'scroll'];

  // --- small helpers -------------------------------------------------------------------------------------------

  function uuid4() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => (b + 0x100).toString(16).slice(1)).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  function base64url(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return window.btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function utf8Length(text) {
    return new TextEncoder().encode(text).length;
  }

  // FNV-1a, enough to give each cookie domain and path its own short cookie-name suffix.
  function shortHash(text) {
    let hash = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return (hash + 0x100000000).toString(16).slice(-4);
  }

  function readCookie(name) {
    const prefix = name + '=';
    const parts = document.cookie ? document.cookie.split('; ') : [];
    for (let i = 0; i < parts.length; i++) {
      if (parts[i].indexOf(prefix) === 0) return decodeURIComponent(parts[i].slice(prefix.length));
    }
    return null;
  }

  function writeCookie(name, value, seconds, path, domain, sameSite, secure) {
    let cookie = name + '=' + encodeURIComponent(value) + '; Path=' + path + '; Max-Age=' + Math.round(seconds);
    if (domain) cookie += '; Domain=' + domain;
    if (sameSite) cookie += '; SameSite=' + sameSite;
    if (secure) cookie += '; Secure';
    document.cookie = cookie;
  }

  function storage() {
    try {
      const store = window.localStorage;
      const probe = '_plowline_probe';
      store.setItem(probe, probe);
      store.removeItem(probe);
      return store;
    } catch (error) {
      return null; // disabled storage, private modes, sandboxed frames
    }
  }

  function dimensions(width, height) {
    return width > 0 && height > 0 ? Math.round(width) + 'x' + Math.round(height) : null;
  }

  function documentSize() {
    const body = document.body;
    const root = document.documentElement;
    const width = Math.max(root.clientWidth, root.offsetWidth, root.scrollWidth, body ? body.offsetWidth : 0, body ? body.scrollWidth : 0);
    const height = Math.max(root.clientHeight, root.offsetHeight, root.scrollHeight, body ? body.offsetHeight : 0, body ? body.scrollHeight : 0);
    return dimensions(width, height);
  }

  function scrollOffsets() {
    return [Math.round(window.pageXOffset || 0), Math.round(window.pageYOffset || 0)];
  }

  function timeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
    } catch (error) {
      return null;
    }
  }

  function isSelfDescribing(value) {
    return value !== null && typeof value === 'object' && typeof value.schema === 'string' && 'data' in value;
  }

  function classesOf(element) {
    return Array.from(element.classList || []);
  }

  function truncate(value, length) {
    return typeof value === 'string' && value.length > length ? value.slice(0, length) : value;
  }

  // `_sp=<domain_userid>.<ms>` on a link: removes any previous value, keeps the fragment last.
  function withLinkerParam(href, value) {
    const hashAt = href.indexOf('#');
    const fragment = hashAt >= 0 ? href.slice(hashAt) : '';
    let base = (hashAt >= 0 ? href.slice(0, hashAt) : href).replace(/([?&])_sp=[^&]*(&|$)/, (match, lead, tail) => (tail ? lead : ''));
    base = base.replace(/[?&]$/, '');
    return base + (base.indexOf('?') >= 0 ? '&' : '?') + '_sp=' + encodeURIComponent(value) + fragment;
  }

  function linkerUserId(href) {
    const match = /[?&]_sp=([^&#]*)/.exec(href);
    if (!match) return null;
    const userId = decodeURIComponent(match[1]).split('.')[0];
    return /^[0-9a-fA-F-]{16,64}$/.test(userId) ? userId : null;
  }

  const KEEPALIVE_SUPPORTED = (() => {
    try {
      return 'keepalive' in new window.Request('');
    } catch (error) {
      return false;
    }
  })();

  // --- the emitter: a persistent queue, batches, retry with backoff, page-hide flushing -------------------------
  //
  // Each page keeps its unacknowledged events in its own localStorage entry {alive, closed, events}, so pages of
  // the same site in several tabs never overwrite or double-send each other's events. A page marks its entry
  // closed when it goes away; another page (the next one, usually) takes over closed entries at once and entries
  // not refreshed for STALE_QUEUE_MS (a crashed tab), and sends their events.

  class Emitter {
    constructor(namespace, collectorUrl, options) {
      this.options = options;
      this.collectorUrl = collectorUrl;
      this.store = options.stateStorageStrategy === 'cookieAndLocalStorage' || options.stateStorageStrategy === 'localStorage'
        ? storage() : null;
      this.queuePrefix = 'plowline_queue.' + namespace + '.' + collectorUrl + '.';
      this.queueKey = this.queuePrefix + uuid4();
      this.queue = [];
      this.closed = false;
      this.inFlight = new Set();
      this.keepaliveBytes = 0;
      this.sending = false;
      this.failures = 0;
      this.retryTimer = null;
      if (this.store) {
        this.adopt();
        setInterval(() => {
          if (this.queue.length) this.save();
          if (this.adopt()) this.flush();
        }, QUEUE_REFRESH_MS);
        // Another tab of the site closed with events unsent: take them over now rather than at the next refresh.
        window.addEventListener('storage', (event) => {
          if (event.key && event.key.indexOf(this.queuePrefix) === 0 && event.newValue && this.adopt()) this.flush();
        });
      }
    }

    // Takes over the events of closed or stale queues of other pages; true if there were any.
    adopt() {
      const now = Date.now();
      const known = new Set(this.queue.map((event) => event.eid));
      let adopted = false;
      const keys = [];
      for (let i = 0; i < this.store.length; i++) keys.push(this.store.key(i));
      keys.forEach((key) => {
        if (!key || key.indexOf(this.queuePrefix) !== 0 || key === this.queueKey) return;
        let entry = null;
        try {
          entry = JSON.parse(this.store.getItem(key));
        } catch (error) {
          entry = null; // unreadable: removed below rather than retried for ever
        }
        if (entry && !entry.closed && now - entry.alive < STALE_QUEUE_MS) return; // its page is still there
        this.store.removeItem(key);
        const events = entry && Array.isArray(entry.events) ? entry.events : [];
        events.forEach((event) => {
          if (event && typeof event.eid === 'string' && !known.has(event.eid)) {
            known.add(event.eid);
            this.queue.push(event);
            adopted = true;
          }
        });
      });
      if (adopted) this.save();
      return adopted;
    }

    save() {
      if (!this.store) return;
      try {
        if (this.queue.length) {
          this.store.setItem(this.queueKey, JSON.stringify({ alive: Date.now(), closed: this.closed, events: this.queue }));
        } else {
          this.store.removeItem(this.queueKey);
        }
      } catch (error) {
        // Quota exceeded: the events stay in memory and are still sent from this page.
      }
    }

    // The page is hidden for good (or for the back-forward cache): another page may take the queue over.
    close() {
      this.closed = true;
      this.save();
    }

    // Back from the back-forward cache. If another page took the queue over meanwhile, it sends those events.
    reopen() {
      if (this.store && this.store.getItem(this.queueKey) === null) this.queue = [];
      this.closed = false;
      this.save();
      this.adopt();
      this.flush();
    }

    enqueue(payload) {
      this.queue.push(payload);
      const overflow = this.queue.length - this.options.maxQueueSize;
      // A full queue drops its oldest unsent events rather than growing storage without bound.
      if (overflow > 0) this.queue.splice(0, overflow);
      this.save();
      if (this.pending().length >= this.options.bufferSize) this.flush();
    }

    pending() {
      return this.queue.filter((event) => !this.inFlight.has(event.eid));
    }

    remove(events) {
      const done = new Set(events.map((event) => event.eid));
      this.queue = this.queue.filter((event) => !done.has(event.eid));
      this.save();
    }

    // The next batch: events in queue order up to maxPostBytes (one event alone if it is bigger).
    nextBatch(events) {
      const batch = [];
      let bytes = ENVELOPE_BYTES;
      for (const event of events) {
        const size = utf8Length(JSON.stringify(event)) + 1;
        if (batch.length && bytes + size > this.options.maxPostBytes) break;
        batch.push(event);
        bytes += size;
        if (this.options.eventMethod === 'get') break;
      }
      return batch;
    }

    flush() {
      if (this.sending || this.retryTimer !== null) return;
      const events = this.pending();
      if (!events.length) return;
      const batch = this.nextBatch(events);
      this.sending = true;
      batch.forEach((event) => this.inFlight.add(event.eid));
      this.send(batch, false).then((outcome) => this.settle(batch, outcome));
    }

    settle(batch, outcome) {
      this.sending = false;
      batch.forEach((event) => this.inFlight.delete(event.eid));
      const callbacks = this.options;
      if (outcome.ok) {
        this.failures = 0;
        this.remove(batch);
        if (callbacks.onRequestSuccess) callbacks.onRequestSuccess(batch.map((event) => Object.assign({}, event, { stm: outcome.stm })));
        this.flush();
        return;
      }
      const willRetry = this.options.retryFailedRequests && NO_RETRY_STATUSES.indexOf(outcome.status) < 0;
      if (!willRetry) this.remove(batch);
      if (callbacks.onRequestFailure) {
        callbacks.onRequestFailure({ status: outcome.status, message: outcome.message, events: batch, willRetry: willRetry });
      }
      if (!willRetry) {
        this.flush();
        return;
      }
      this.failures += 1;
      const ceiling = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * Math.pow(2, this.failures - 1));
      // Jitter keeps many pages from hammering a collector that just came back all at the same moment.
      const delay = ceiling * (0.75 + Math.random() / 4);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.flush();
      }, delay);
    }

    retryNow() {
      if (this.retryTimer !== null) {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
      }
      this.flush();
    }

    headers(post) {
      const headers = {};
      if (post) headers['Content-Type'] = POST_CONTENT_TYPE;
      if (this.options.serverAnonymisation()) headers['SP-Anonymous'] = '*';
      return headers;
    }

    // Sends one batch; resolves to {ok, status, message, stm} and never rejects.
    send(batch, unloading) {
      const stm = String(Date.now());
      const post = this.options.eventMethod !== 'get';
      let url;
      let body = null;
      if (post) {
        url = this.collectorUrl + this.options.postPath;
        body = JSON.stringify({ schema: PAYLOAD_DATA, data: batch.map((event) => Object.assign({}, event, { stm: stm })) });
      } else {
        url = this.collectorUrl + GET_PATH + '?' + querystring(batch[0], stm);
      }
      if (!window.fetch) return this.sendImage(url, stm);
      if (unloading && !KEEPALIVE_SUPPORTED && post && navigator.sendBeacon && !this.options.serverAnonymisation()) {
        // Without keepalive a fetch dies with the page; a beacon cannot carry SP-Anonymous, hence the condition.
        // A queued beacon counts as sent, as in Snowplow's tracker: the browser delivers it after the page is gone.
        const queuedBeacon = navigator.sendBeacon(url, new window.Blob([body], { type: POST_CONTENT_TYPE }));
        return Promise.resolve({ ok: queuedBeacon, status: queuedBeacon ? 200 : 0, message: 'beacon', stm: stm });
      }
      const bytes = body ? utf8Length(body) : url.length;
      const keepalive = this.keepaliveBytes + bytes <= KEEPALIVE_BUDGET;
      if (unloading && !keepalive) return Promise.resolve({ ok: false, status: 0, message: 'keepalive budget', stm: stm });
      if (keepalive) this.keepaliveBytes += bytes;
      const init = {
        method: post ? 'POST' : 'GET',
        headers: this.headers(post),
        body: body,
        credentials: this.options.credentials,
        keepalive: keepalive,
        mode: 'cors',
      };
      let request;
      try {
        request = window.fetch(url, init);
      } catch (error) {
        request = Promise.reject(error);
      }
      return request.then(
        (response) => ({ ok: response.ok, status: response.status, message: response.statusText, stm: stm }),
        (error) => ({ ok: false, status: 0, message: String(error && error.message || error), stm: stm }),
      ).then((outcome) => {
        if (keepalive) this.keepaliveBytes -= bytes;
        return outcome;
      });
    }

    // The GET fallback for browsers without fetch: one pixel request per event.
    sendImage(url, stm) {
      return new Promise((resolve) => {
        const image = new window.Image(1, 1);
        image.onload = () => resolve({ ok: true, status: 200, message: 'ok', stm: stm });
        image.onerror = () => resolve({ ok: false, status: 0, message: 'pixel request failed', stm: stm });
        image.src = url;
      });
    }

    // The page may be going away: hand every unsent event to keepalive requests. They stay in the stored queue
    // until acknowledged, so the next page resends whatever did not arrive (at least once; loaders dedupe).
    flushOnHide() {
      let events = this.pending();
      while (events.length) {
        const batch = this.nextBatch(events);
        batch.forEach((event) => this.inFlight.add(event.eid));
        this.send(batch, true).then((outcome) => {
          batch.forEach((event) => this.inFlight.delete(event.eid));
          if (outcome.ok) this.remove(batch);
        });
        events = events.slice(batch.length);
      }
    }
  }

  // A GET querystring as Snowplow's JS tracker builds it: stm first, contexts and the event JSON last.
  function querystring(event, stm) {
    const last = ['ue_px', 'ue_pr', 'cx', 'co'];
    const pairs = [['stm', stm]];
    Object.keys(event).forEach((key) => { if (last.indexOf(key) < 0 && key !== 'stm') pairs.push([key, event[key]]); });
    last.forEach((key) => { if (key in event) pairs.push([key, event[key]]); });
    return pairs.map((pair) => encodeURIComponent(pair[0]) + '=' + encodeURIComponent(pair[1])).join('&');
  }

  // --- the tracker ---------------------------------------------------------------------------------------------

  const DEFAULTS = {
    appId: '',
    platform: 'web',
    cookieName: '_sp_',
    cookieDomain: null,
    cookiePath: '/',
    cookieSameSite: 'Lax',
    cookieSecure: null, // null: Secure on https pages
    cookieLifetime: 63072000, // seconds (2 years)
    sessionCookieTimeout: 1800, // seconds of inactivity that end a session
    stateStorageStrategy: 'cookieAndLocalStorage', // 'cookie' | 'localStorage' | 'none' (cookieless)
    anonymousTracking: false, // true | { withServerAnonymisation: boolean }
    respectDoNotTrack: false,
    optOutCookie: null,
    eventMethod: 'post', // 'post' | 'get'
    postPath: TP2_PATH,
    bufferSize: 1,
    maxPostBytes: 40000,
    maxQueueSize: 1000,
    encodeBase64: true,
    credentials: 'include',
    retryFailedRequests: true,
    retryBaseMs: 1000,
    retryMaxMs: 60000,
    crossDomainLinker: null, // function (anchorElement) -> boolean: which links get `_sp`
    useLinkerUserId: true, // adopt the domain_userid from an incoming `_sp` when this browser has none
    contexts: { webPage: true },
    onRequestSuccess: null,
    onRequestFailure: null,
  };

  class Tracker {
    constructor(namespace, collector, options) {
      this.namespace = namespace;
      this.options = Object.assign({}, DEFAULTS, options || {});
      this.options.contexts = Object.assign({}, DEFAULTS.contexts, this.options.contexts || {});
      const base = /^[a-z][a-z0-9+.-]*:\/\//i.test(collector) ? collector : window.location.protocol + '//' + collector;
      this.collectorUrl = base.replace(/\/+$/, '');
      this.cookieless = this.options.stateStorageStrategy === 'none';
      this.idName = this.options.cookieName + 'id.' + shortHash((this.options.cookieDomain || window.location.hostname) + this.options.cookiePath);
      this.userId = null;
      this.customUrl = null;
      this.customReferrer = null;
      this.lastPageUrl = null;
      this.pageViewId = null;
      this.globalContexts = [];
      this.activity = null;
      this.applyAnonymity(this.options.anonymousTracking);
      this.emitter = new Emitter(namespace, this.collectorUrl, this.emitterOptions());
      this.listen();
      // Events stored by an earlier page (collector down, page closed mid-send) go out now.
      if (this.emitter.queue.length) this.emitter.flush();
    }

    emitterOptions() {
      const options = this.options;
      return {
        stateStorageStrategy: options.stateStorageStrategy,
        eventMethod: options.eventMethod === 'get' ? 'get' : 'post',
        postPath: options.postPath,
        bufferSize: Math.max(1, options.bufferSize),
        maxPostBytes: options.maxPostBytes,
        maxQueueSize: options.maxQueueSize,
        credentials: options.credentials,
        retryFailedRequests: options.retryFailedRequests,
        retryBaseMs: options.retryBaseMs,
        retryMaxMs: options.retryMaxMs,
        onRequestSuccess: options.onRequestSuccess,
        onRequestFailure: options.onRequestFailure,
        // Anonymous tracking can be switched on and off at run time, so the emitter asks for each request.
        serverAnonymisation: () => this.serverAnonymisation,
      };
    }

    listen() {
      const emitter = this.emitter;
      document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') emitter.flushOnHide(); });
      window.addEventListener('pagehide', () => {
        emitter.flushOnHide();
        emitter.close();
      });
      window.addEventListener('pageshow', (event) => { if (event.persisted) emitter.reopen(); });
      window.addEventListener('online', () => this.emitter.retryNow());
      if (this.options.crossDomainLinker) {
        const decorate = (event) => {
          const anchor = event.target && event.target.closest ? event.target.closest('a[href]') : null;
          const duid = this.ids(false) && this.ids(false).duid;
          if (anchor && duid && this.options.crossDomainLinker(anchor)) {
            anchor.href = withLinkerParam(anchor.href, duid + '.' + Date.now());
          }
        };
        document.addEventListener('mousedown', decorate, true);
        document.addEventListener('keydown', decorate, true);
        document.addEventListener('click', decorate, true);
      }
    }

    applyAnonymity(setting) {
      this.anonymous = Boolean(setting);
      this.serverAnonymisation = this.anonymous && !(typeof setting === 'object' && setting.withServerAnonymisation === false);
    }

    // --- identity: domain user id, session index and session id in a first-party cookie ----------------------

    blocked() {
      if (this.options.optOutCookie && readCookie(this.options.optOutCookie) !== null) return true;
      if (this.options.respectDoNotTrack) {
        const dnt = navigator.doNotTrack || window.doNotTrack || navigator.msDoNotTrack;
        if (dnt === '1' || dnt === 'yes') return true;
      }
      return false;
    }

    readIds() {
      const strategy = this.options.stateStorageStrategy;
      let raw = null;
      if (strategy === 'cookie' || strategy === 'cookieAndLocalStorage') raw = readCookie(this.idName);
      else if (strategy === 'localStorage') raw = storage() && storage().getItem(this.idName);
      if (!raw) return null;
      const parts = raw.split('.');
      if (parts.length < 5 || !parts[0]) return null;
      return { duid: parts[0], created: Number(parts[1]) || 0, vid: Number(parts[2]) || 0, last: Number(parts[3]) || 0, sid: parts[4] };
    }

    writeIds(ids) {
      const value = [ids.duid, ids.created, ids.vid, ids.last, ids.sid].join('.');
      const strategy = this.options.stateStorageStrategy;
      if (strategy === 'cookie' || strategy === 'cookieAndLocalStorage') {
        const options = this.options;
        const secure = options.cookieSecure === null ? window.location.protocol === 'https:' : options.cookieSecure;
        writeCookie(this.idName, value, options.cookieLifetime, options.cookiePath, options.cookieDomain, options.cookieSameSite, secure);
      } else if (strategy === 'localStorage' && storage()) {
        storage().setItem(this.idName, value);
      }
    }

    // The identifiers of the next event. With `touch`, the session is renewed after sessionCookieTimeout
    // seconds without events, and the activity time is stored (shared by every tab of the site).
    ids(touch) {
      if (this.anonymous || this.cookieless) return null;
      const now = Date.now();
      let ids = this.readIds();
      if (!ids && !touch) return null;
      if (!ids) {
        const linked = this.options.useLinkerUserId ? linkerUserId(window.location.href) : null;
        ids = { duid: linked || uuid4(), created: now, vid: 0, last: 0, sid: '' };
      }
      if (!touch) return ids;
      if (!ids.sid || now - ids.last > this.options.sessionCookieTimeout * 1000) {
        ids.vid += 1;
        ids.sid = uuid4();
      }
      ids.last = now;
      this.writeIds(ids);
      return ids;
    }

    // --- building and queueing events ---------------------------------------------------------------------

    contextsFor(payload, context) {
      const entities = [];
      const add = (value) => {
        if (Array.isArray(value)) value.forEach(add);
        else if (isSelfDescribing(value)) entities.push(value);
      };
      add(context || []);
      this.globalContexts.forEach((global) => {
        if (typeof global === 'function') {
          try {
            add(global({ event: payload.e, payload: Object.assign({}, payload) }));
          } catch (error) {
            // A failing context generator must not cost the event.
          }
        } else {
          add(global);
        }
      });
      if (this.options.contexts.webPage) entities.push({ schema: WEB_PAGE, data: { id: this.currentPageViewId() } });
      return entities;
    }

    currentPageViewId() {
      if (!this.pageViewId) this.pageViewId = uuid4();
      return this.pageViewId;
    }

    // Builds one tracker-protocol event, queues it and returns its event id (null when opted out).
    track(fields, context, trueTimestamp) {
      if (this.blocked()) return null;
      const options = this.options;
      const payload = {};
      const set = (key, value) => {
        if (value !== null && value !== undefined && value !== '') payload[key] = String(value);
      };
      Object.keys(fields).forEach((key) => set(key, fields[key]));
      set('eid', uuid4());
      if (trueTimestamp) set('ttm', Math.round(trueTimestamp));
      else set('dtm', Date.now());
      set('tv', TRACKER_VERSION);
      set('tna', this.namespace);
      set('aid', options.appId);
      set('p', options.platform);
      set('cookie', navigator.cookieEnabled ? '1' : '0');
      set('cs', document.characterSet || document.charset);
      set('lang', navigator.language || navigator.userLanguage);
      set('res', dimensions(window.screen.width, window.screen.height));
      set('cd', window.screen.colorDepth);
      set('tz', timeZone());
      set('vp', dimensions(window.innerWidth || document.documentElement.clientWidth, window.innerHeight || document.documentElement.clientHeight));
      set('ds', documentSize());
      set('url', this.customUrl || window.location.href);
      set('refr', this.customReferrer || document.referrer);
      const ids = this.ids(true);
      if (ids) {
        set('duid', ids.duid);
        set('vid', ids.vid);
        set('sid', ids.sid);
      }
      if (!this.anonymous) set('uid', this.userId);
      const entities = this.contextsFor(payload, context);
      if (entities.length) {
        const json = JSON.stringify({ schema: CONTEXTS, data: entities });
        if (options.encodeBase64) set('cx', base64url(json));
        else set('co', json);
      }
      this.emitter.enqueue(payload);
      return payload.eid;
    }

    selfDescribing(event, context, trueTimestamp) {
      if (!isSelfDescribing(event)) throw new Error('plowline: a self-describing event needs {schema, data}');
      const json = JSON.stringify({ schema: UNSTRUCT_EVENT, data: { schema: event.schema, data: event.data } });
      const fields = { e: 'ue' };
      if (this.options.encodeBase64) fields.ue_px = base64url(json);
      else fields.ue_pr = json;
      return this.track(fields, context, trueTimestamp);
    }

    // --- public API: every method below is a command ------------------------------------------------------

    trackPageView(event) {
      event = event || {};
      const url = this.customUrl || window.location.href;
      // A single-page app's later page views are referred by the previous page.
      if (this.lastPageUrl && this.lastPageUrl !== url && !this.customReferrer) this.customReferrer = this.lastPageUrl;
      this.lastPageUrl = url;
      this.pageViewId = uuid4();
      const eid = this.track({ e: 'pv', page: event.title || document.title }, event.context, event.timestamp);
      if (this.activity) this.startActivity();
      return eid;
    }

    trackStructEvent(event) {
      if (!event || !event.category || !event.action) throw new Error('plowline: a structured event needs category and action');
      return this.track({
        e: 'se', se_ca: event.category, se_ac: event.action, se_la: event.label, se_pr: event.property,
        se_va: typeof event.value === 'number' && isFinite(event.value) ? event.value : null,
      }, event.context, event.timestamp);
    }

    trackSelfDescribingEvent(event) {
      return this.selfDescribing(event.event, event.context, event.timestamp);
    }

    trackLinkClick(event) {
      const data = { targetUrl: event.targetUrl };
      ['elementId', 'elementClasses', 'elementTarget', 'elementContent'].forEach((key) => {
        if (event[key] !== undefined && event[key] !== null) data[key] = event[key];
      });
      return this.selfDescribing({ schema: LINK_CLICK, data: data }, event.context, event.timestamp);
    }

    setUserId(userId) {
      this.userId = userId === undefined || userId === null || userId === '' ? null : String(userId);
    }

    setCustomUrl(url) {
      this.customUrl = url || null;
    }

    setReferrerUrl(url) {
      this.customReferrer = url || null;
    }

    addGlobalContexts(contexts) {
      (Array.isArray(contexts) ? contexts : [contexts]).forEach((context) => this.globalContexts.push(context));
    }

    removeGlobalContexts(contexts) {
      const gone = Array.isArray(contexts) ? contexts : [contexts];
      const key = (context) => (typeof context === 'function' ? context : JSON.stringify(context));
      const keys = gone.map(key);
      this.globalContexts = this.globalContexts.filter((context) => keys.indexOf(key(context)) < 0);
    }

    clearGlobalContexts() {
      this.globalContexts = [];
    }

    enableAnonymousTracking(setting) {
      this.applyAnonymity(setting === undefined ? true : setting);
    }

    disableAnonymousTracking() {
      this.applyAnonymity(false);
    }

    newSession() {
      const ids = this.ids(false);
      if (!ids) return;
      ids.sid = '';
      this.writeIds(ids);
    }

    flushBuffer() {
      this.emitter.retryNow();
    }

    getDomainUserId() {
      const ids = this.ids(false);
      return ids ? ids.duid : null;
    }

    getSessionId() {
      const ids = this.ids(false);
      return ids && ids.sid ? ids.sid : null;
    }

    getSessionIndex() {
      const ids = this.ids(false);
      return ids ? ids.vid : null;
    }

    getPageViewId() {
      return this.currentPageViewId();
    }

    getUserId() {
      return this.userId;
    }

    // Events tracked but not yet acknowledged by the collector (copies).
    getQueuedEvents() {
      return this.emitter.queue.map((event) => Object.assign({}, event));
    }

    // --- activity tracking: page pings with scroll offsets ------------------------------------------------

    enableActivityTracking(settings) {
      settings = settings || {};
      const first = this.activity === null;
      this.activity = {
        minimumVisitLength: Math.max(0, Number(settings.minimumVisitLength || 5)),
        heartbeatDelay: Math.max(1, Number(settings.heartbeatDelay || 10)),
        context: settings.context,
        timer: null,
        active: false,
        offsets: null,
      };
      if (first) {
        const mark = () => this.markActivity();
        ACTIVITY_EVENTS.forEach((name) => window.addEventListener(name, mark, { passive: true, capture: true }));
        document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') mark(); });
      }
      if (this.pageViewId) this.startActivity();
    }

    disableActivityTracking() {
      if (this.activity && this.activity.timer !== null) clearTimeout(this.activity.timer);
      this.activity = null;
    }

    startActivity() {
      const activity = this.activity;
      if (activity.timer !== null) clearTimeout(activity.timer);
      activity.active = false;
      this.resetOffsets();
      const beat = (delay) => {
        activity.timer = setTimeout(() => {
          if (this.activity !== activity) return;
          if (activity.active) this.ping();
          beat(activity.heartbeatDelay * 1000);
        }, delay);
      };
      beat(activity.minimumVisitLength * 1000);
    }

    resetOffsets() {
      const [x, y] = scrollOffsets();
      this.activity.offsets = { minX: x, maxX: x, minY: y, maxY: y };
    }

    markActivity() {
      const activity = this.activity;
      if (!activity || !activity.offsets) return;
      activity.active = true;
      const [x, y] = scrollOffsets();
      const offsets = activity.offsets;
      offsets.minX = Math.min(offsets.minX, x);
      offsets.maxX = Math.max(offsets.maxX, x);
      offsets.minY = Math.min(offsets.minY, y);
      offsets.maxY = Math.max(offsets.maxY, y);
    }

    ping() {
      const offsets = this.activity.offsets;
      this.track({ e: 'pp', pp_mix: offsets.minX, pp_max: offsets.maxX, pp_miy: offsets.minY, pp_may: offsets.maxY },
        typeof this.activity.context === 'function' ? this.activity.context() : this.activity.context);
      this.activity.active = false;
      this.resetOffsets();
    }

    // --- link click tracking ------------------------------------------------------------------------------

    enableLinkClickTracking(settings) {
      settings = settings || {};
      if (this.linkClicks) {
        this.linkClicks.settings = settings;
        return;
      }
      this.linkClicks = { settings: settings };
      const onClick = (event) => {
        if (event.type === 'auxclick' && event.button !== 1) return; // middle clicks open links too
        const anchor = event.target && event.target.closest ? event.target.closest('a[href], area[href]') : null;
        if (!anchor) return;
        const current = this.linkClicks.settings;
        const classes = classesOf(anchor);
        if (current.allowlist && !classes.some((name) => current.allowlist.indexOf(name) >= 0)) return;
        if (current.denylist && classes.some((name) => current.denylist.indexOf(name) >= 0)) return;
        if (current.filter && !current.filter(anchor)) return;
        const href = anchor.href;
        if (!href || /^javascript:/i.test(href)) return;
        this.trackLinkClick({
          targetUrl: href,
          elementId: anchor.id || undefined,
          elementClasses: classes.length ? classes : undefined,
          elementTarget: anchor.target || undefined,
          elementContent: current.trackContent ? truncate((anchor.innerText || anchor.textContent || '').trim(), 4096) : undefined,
          context: current.context,
        });
      };
      document.addEventListener('click', onClick, true);
      document.addEventListener('auxclick', onClick, true);
    }

    // --- form tracking ------------------------------------------------------------------------------------

    enableFormTracking(settings) {
      settings = settings || {};
      if (this.forms) {
        this.forms.settings = settings;
        return;
      }
      this.forms = { settings: settings };
      document.addEventListener('focusin', (event) => this.formFieldEvent(event.target, FOCUS_FORM, 'elementType'), true);
      document.addEventListener('change', (event) => this.formFieldEvent(event.target, CHANGE_FORM, 'type'), true);
      document.addEventListener('submit', (event) => this.formSubmit(event.target), true);
    }

    formAllowed(form) {
      const forms = this.forms.settings.forms || {};
      const classes = classesOf(form);
      if (forms.allowlist && !classes.some((name) => forms.allowlist.indexOf(name) >= 0)) return false;
      if (forms.denylist && classes.some((name) => forms.denylist.indexOf(name) >= 0)) return false;
      return true;
    }

    // Password fields are never tracked, whatever the settings; the deny-list names more by name or id.
    fieldAllowed(element) {
      if (!element || FORM_NODES.indexOf(element.nodeName) < 0 || !element.form) return false;
      if (element.type === 'password') return false;
      const fields = this.forms.settings.fields || {};
      const denylist = fields.denylist || [];
      if (denylist.indexOf(element.name) >= 0 || (element.id && denylist.indexOf(element.id) >= 0)) return false;
      if (fields.allowlist && fields.allowlist.indexOf(element.name) < 0 && fields.allowlist.indexOf(element.id) < 0) return false;
      if (fields.filter && !fields.filter(element)) return false;
      return this.formAllowed(element.form);
    }

    formFieldEvent(element, schema, typeKey) {
      if (!this.fieldAllowed(element)) return;
      const data = {
        formId: formIdOf(element.form),
        elementId: element.name || element.id || '',
        nodeName: element.nodeName,
        elementClasses: classesOf(element),
        value: fieldValue(element),
      };
      // The schemas' type enums have no null: a SELECT or TEXTAREA has no type key at all, as in Snowplow's tracker.
      if (fieldType(element)) data[typeKey] = fieldType(element);
      this.selfDescribing({ schema: schema, data: data }, this.forms.settings.context);
    }

    formSubmit(form) {
      if (!form || form.nodeName !== 'FORM' || !this.formAllowed(form)) return;
      const elements = Array.from(form.elements)
        .filter((element) => this.fieldAllowed(element))
        .map((element) => {
          const field = { name: element.name || element.id || '', value: fieldValue(element), nodeName: element.nodeName };
          if (fieldType(element)) field.type = fieldType(element);
          return field;
        });
      this.selfDescribing({
        schema: SUBMIT_FORM,
        data: { formId: formIdOf(form), formClasses: classesOf(form), elements: elements },
      }, this.forms.settings.context);
    }
  }

  function formIdOf(form) {
    return form.getAttribute('id') || form.getAttribute('name') || '';
  }

  function fieldType(element) {
    return element.nodeName === 'INPUT' && FORM_TYPES.indexOf(element.type) >= 0 ? element.type : null;
  }

  function fieldValue(element) {
    if (element.type === 'checkbox' || element.type === 'radio') return element.checked ? element.value : null;
    return truncate(element.value, 65535);
  }

  // --- the command queue -----------------------------------------------------------------------------------

  const COMMANDS = Object.getOwnPropertyNames(Tracker.prototype).filter((name) => {
    return name !== 'constructor' && /^(track|set|add|remove|clear|enable|disable|new|flush|get)/.test(name);
  });
  const trackers = {};

  function run(args) {
    const command = args[0];
    if (typeof command === 'function') return command.call(trackers, trackers);
    if (command === 'newTracker') {
      const name = args[1];
      if (!trackers[name]) trackers[name] = new Tracker(name, args[2], args[3]);
      return undefined;
    }
    const split = String(command).split(':');
    const method = split[0];
    if (COMMANDS.indexOf(method) < 0) throw new Error('plowline: unknown command ' + method);
    const names = split.length > 1 ? split[1].split(';') : Object.keys(trackers);
    let result;
    names.forEach((name) => {
      if (trackers[name]) result = trackers[name][method].apply(trackers[name], Array.prototype.slice.call(args, 1));
    });
    return result;
  }

  function safeRun(args) {
    try {
      return run(args);
    } catch (error) {
      if (window.console) window.console.error(error);
      return undefined;
    }
  }

  const globalName = window.PlowlineGlobalName || 'plowline';
  const existing = window[globalName];
  if (existing && existing.version === VERSION && existing.trackers) return; // loaded twice
  const queued = existing && existing.q ? Array.from(existing.q) : [];
  const plowline = function () {
    return safeRun(arguments);
  };
  plowline.version = VERSION;
  plowline.trackers = trackers;
  window[globalName] = plowline;
  queued.forEach(safeRun);
})(window, document, navigator);
