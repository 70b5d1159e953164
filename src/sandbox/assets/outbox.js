// MailKit sandbox outbox: relative times, clickable rows, live refresh and "clear".
// Loaded as a file because the app's CSP forbids inline script; every value from an email is
// inserted with textContent, never as HTML.
(function () {
  'use strict';

  var body = document.body;
  var outboxPath = body.getAttribute('data-outbox-path') || '';
  var page = body.getAttribute('data-page');
  var POLL_MS = 2000;

  function relative(iso) {
    var seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (!isFinite(seconds)) return '';
    if (seconds < 5) return 'just now';
    if (seconds < 60) return seconds + ' s ago';
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return minutes + ' min ago';
    var hours = Math.round(minutes / 60);
    if (hours < 24) return hours + ' h ago';
    return new Date(iso).toLocaleString();
  }

  function absolute(iso) {
    return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') + ' UTC';
  }

  function refreshTimes() {
    var times = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      times[i].textContent = relative(times[i].getAttribute('datetime'));
    }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Text that wraps at its spaces only: each word in a .word span, which the CSS keeps whole.
  function appendWords(parent, text) {
    String(text)
      .split(/(\s+)/)
      .forEach(function (part) {
        if (!part) return;
        parent.appendChild(/^\s/.test(part) ? document.createTextNode(part) : el('span', 'word', part));
      });
    return parent;
  }

  function rowFor(message, fresh) {
    var href = outboxPath + '/' + encodeURIComponent(message.id);
    var tr = el('tr', fresh ? 'fresh' : '');
    tr.setAttribute('data-href', href);
    tr.appendChild(el('td', 'col-from', message.from));
    tr.appendChild(el('td', 'col-to', message.to.join(', ')));
    var subject = el('td', 'col-subject');
    var link = appendWords(el('a', ''), message.subject);
    link.href = href;
    subject.appendChild(link);
    subject.appendChild(appendWords(el('span', 'snippet'), message.snippet));
    tr.appendChild(subject);
    var status = el('td', 'col-status');
    status.appendChild(el('span', 'badge badge-' + message.lastEvent, message.lastEvent));
    tr.appendChild(status);
    var when = el('td', 'col-time');
    var time = el('time', '', relative(message.createdAt));
    time.setAttribute('datetime', message.createdAt);
    time.title = absolute(message.createdAt);
    when.appendChild(time);
    tr.appendChild(when);
    return tr;
  }

  function currentIds() {
    var rows = document.querySelectorAll('#rows tr[data-href]');
    var ids = [];
    for (var i = 0; i < rows.length; i++) ids.push(rows[i].getAttribute('data-href'));
    return ids;
  }

  function render(list) {
    var rows = document.getElementById('rows');
    if (!rows) return;
    var known = {};
    currentIds().forEach(function (href) {
      known[href] = true;
    });
    var fragment = document.createDocumentFragment();
    list.messages.forEach(function (m) {
      fragment.appendChild(rowFor(m, !known[outboxPath + '/' + encodeURIComponent(m.id)]));
    });
    rows.replaceChildren(fragment);
    var count = list.total;
    document.getElementById('count').textContent = count + (count === 1 ? ' message' : ' messages');
    document.getElementById('messages').hidden = count === 0;
    document.getElementById('empty').hidden = count !== 0;
    document.title = 'Outbox (' + count + ') · MailKit sandbox';
  }

  function poll() {
    fetch(outboxPath + '/messages?limit=200', { headers: { accept: 'application/json' }, cache: 'no-store' })
      .then(function (res) {
        return res.ok ? res.json() : Promise.reject(res.status);
      })
      .then(function (list) {
        document.getElementById('live').hidden = false;
        var ids = list.messages.map(function (m) {
          return outboxPath + '/' + encodeURIComponent(m.id);
        });
        if (ids.join(' ') !== currentIds().join(' ')) render(list);
      })
      .catch(function () {
        document.getElementById('live').hidden = true;
      })
      .then(function () {
        setTimeout(poll, POLL_MS);
      });
  }

  function setUpList() {
    // A click anywhere on a row opens the message; real links keep their own behaviour.
    document.getElementById('rows').addEventListener('click', function (event) {
      if (event.target.closest('a')) return;
      var tr = event.target.closest('tr[data-href]');
      if (tr) window.location.href = tr.getAttribute('data-href');
    });
    var clear = document.getElementById('clear');
    clear.hidden = false;
    clear.addEventListener('click', function () {
      if (!window.confirm('Delete every message in the outbox?')) return;
      fetch(outboxPath + '/messages', { method: 'DELETE' }).then(function () {
        render({ total: 0, messages: [] });
      });
    });
    setTimeout(poll, POLL_MS);
  }

  // The key email's "Copy key": the whole key on the clipboard (a double-click stops at its first dot).
  function setUpCopyKey() {
    var button = document.getElementById('copy-key');
    if (!button || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener('click', function () {
      var result = document.getElementById('copy-key-result');
      navigator.clipboard.writeText(button.getAttribute('data-key')).then(
        function () {
          result.textContent = 'Copied. Paste it into the dashboard\'s "Your API key".';
        },
        function () {
          result.textContent = 'Could not copy: select the whole key above and copy it.';
        },
      );
    });
  }

  refreshTimes();
  setInterval(refreshTimes, 15000);
  if (page === 'list') setUpList();
  if (page === 'message') setUpCopyKey();
})();
