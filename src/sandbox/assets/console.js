// MailKit sandbox console: the actions call the JSON control API (same origin, Content-Type
// application/json, which is what keeps a cross-site form from driving it), wait for the webhooks
// they caused to settle, then reload the page. Loaded as a file because the CSP forbids inline
// script; every message is set with textContent.
(function () {
  'use strict';

  var api = document.body.getAttribute('data-api-path') || '/sandbox/api';
  var status = document.getElementById('console-status');
  var FLASH = 'mailkit-console-flash';

  function say(text, kind) {
    status.textContent = text;
    status.className = 'status ' + (kind || '');
  }

  function post(path, body) {
    return fetch(api + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body || {}),
      credentials: 'same-origin',
    }).then(function (res) {
      return res
        .json()
        .catch(function () {
          return {};
        })
        .then(function (json) {
          if (!res.ok) throw new Error((json.error && json.error.message) || 'HTTP ' + res.status);
          return json;
        });
    });
  }

  // Waits (up to ~5 s) until no delivery in that log (Dodo's /webhooks by default) is pending,
  // so the reloaded page shows the outcome.
  function settled(path) {
    var deadline = Date.now() + 5000;
    function check() {
      return fetch(api + (path || '/webhooks'), { headers: { accept: 'application/json' }, cache: 'no-store' })
        .then(function (res) {
          return res.json();
        })
        .then(function (list) {
          var pending = list.data.some(function (d) {
            return d.state === 'pending';
          });
          if (!pending || Date.now() > deadline) return;
          return new Promise(function (resolve) {
            setTimeout(resolve, 200);
          }).then(check);
        })
        .catch(function () {
          /* reload anyway */
        });
    }
    return new Promise(function (resolve) {
      setTimeout(resolve, 150);
    }).then(check);
  }

  function reloadWith(message, customerId) {
    try {
      sessionStorage.setItem(FLASH, message);
    } catch (e) {
      /* private mode: no flash */
    }
    var url = new URL(window.location.href);
    if (customerId) url.searchParams.set('customer', customerId);
    url.searchParams.delete('customer_id');
    url.searchParams.delete('amount');
    url.searchParams.delete('reason');
    url.searchParams.delete('event');
    window.location.assign(url.toString());
  }

  function run(button, label, work) {
    if (button) button.disabled = true;
    say(label + '…');
    return work().catch(function (err) {
      say(err.message, 'error');
      if (button) button.disabled = false;
    });
  }

  var flash = null;
  try {
    flash = sessionStorage.getItem(FLASH);
    sessionStorage.removeItem(FLASH);
  } catch (e) {
    /* ignore */
  }
  if (flash) say(flash, 'ok');

  /** −4,000 or +5,000: formatted like every other number on the page. */
  function signed(n) {
    return (n < 0 ? '\u2212' : '+') + Math.abs(n).toLocaleString('en-US');
  }

  var adjust = document.getElementById('adjust-form');
  if (adjust) {
    adjust.addEventListener('submit', function (event) {
      event.preventDefault();
      var customerId = adjust.elements.customer_id.value;
      var amount = Number(adjust.elements.amount.value);
      var reason = adjust.elements.reason.value.trim();
      if (!Number.isInteger(amount) || amount === 0) {
        say('Enter a whole, non-zero number of credits (e.g. -4000).', 'error');
        adjust.elements.amount.focus();
        return;
      }
      var body = { amount: amount };
      if (reason) body.reason = reason;
      run(adjust.querySelector('button[type="submit"]'), 'Adjusting', function () {
        return post('/customers/' + encodeURIComponent(customerId) + '/adjust', body).then(function (res) {
          return settled().then(function () {
            reloadWith('Balance adjusted by ' + signed(amount) + ': now ' + Number(res.balance).toLocaleString('en-US') + '.', customerId);
          });
        });
      });
    });
  }

  var trigger = document.getElementById('trigger-form');
  if (trigger) {
    trigger.addEventListener('submit', function (event) {
      event.preventDefault();
      var customerId = trigger.elements.customer_id.value;
      var type = trigger.elements.event.value;
      run(trigger.querySelector('button[type="submit"]'), 'Triggering ' + type, function () {
        return post('/trigger', { event: type, customer_id: customerId }).then(function (res) {
          return settled().then(function () {
            var types = res.events
              .map(function (e) {
                return e.type;
              })
              .join(', ');
            reloadWith('Triggered ' + type + ': ' + (types || 'no events') + '.', customerId);
          });
        });
      });
    });
  }

  var advance = document.getElementById('advance-cycle');
  if (advance) {
    advance.addEventListener('click', function () {
      run(advance, 'Advancing the clock one billing cycle', function () {
        return post('/clock/advance', { cycles: 1 }).then(function (res) {
          return settled().then(function () {
            reloadWith('Clock advanced one billing cycle: now ' + res.now + '.');
          });
        });
      });
    });
  }

  // Redeliver, in either log: Dodo's (#webhooks) and the Resend half's email events
  // (#resend-webhooks); each list names its control API path in data-webhooks-api.
  ['webhooks', 'resend-webhooks'].forEach(function (listId) {
    var list = document.getElementById(listId);
    if (!list) return;
    var path = list.getAttribute('data-webhooks-api') || '/webhooks';
    list.addEventListener('click', function (event) {
      var button = event.target.closest('button[data-redeliver]');
      if (!button) return;
      var id = button.getAttribute('data-redeliver');
      run(button, 'Redelivering ' + id, function () {
        return post(path + '/' + encodeURIComponent(id) + '/redeliver').then(function () {
          // A pending delivery may keep failing: settled() gives up waiting after ~5 s.
          return settled(path).then(function () {
            reloadWith('Redelivered ' + id + '.');
          });
        });
      });
    });
  });

  var toggle = document.getElementById('resend-events-toggle');
  if (toggle) {
    toggle.addEventListener('click', function () {
      var enable = toggle.getAttribute('data-enabled') !== 'true';
      run(toggle, enable ? 'Turning email events on' : 'Turning email events off', function () {
        return post('/resend/webhooks/settings', { enabled: enable }).then(function (res) {
          reloadWith('Email events are ' + (res.enabled ? 'on' : 'off') + '.');
        });
      });
    });
  }
})();
