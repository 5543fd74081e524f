// yarnit dashboard: the action forms. Each form posts JSON to a token-protected control-plane endpoint
// after a confirmation; the answer (or the refusal) is announced in the page's status line.
"use strict";
(function () {
  function status(text, ok) {
    var el = document.getElementById("action-status");
    if (!el) { return; }
    el.textContent = text;
    el.className = ok ? "ok" : "bad";
  }
  function tokenInput() { return document.getElementById("token"); }
  document.addEventListener("DOMContentLoaded", function () {
    var input = tokenInput();
    if (input) {
      input.value = sessionStorage.getItem("yarnit-token") || "";
      input.addEventListener("change", function () { sessionStorage.setItem("yarnit-token", input.value); });
    }
    document.querySelectorAll("form.action").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (!window.confirm(form.dataset.confirm)) { status("Cancelled: nothing was changed.", true); return; }
        var body = JSON.parse(form.dataset.payload || "{}");
        new FormData(form).forEach(function (value, key) {
          body[key] = /^[0-9]+$/.test(value) && key !== "reason" ? Number(value) : value;
        });
        var headers = {"Content-Type": "application/json"};
        var token = input ? input.value.trim() : "";
        if (token) { headers.Authorization = "Bearer " + token; }
        var button = form.querySelector("button");
        button.disabled = true;
        fetch(form.dataset.endpoint, {method: "POST", headers: headers, body: JSON.stringify(body)})
          .then(function (response) {
            return response.json().catch(function () { return {}; }).then(function (data) {
              if (response.ok) {
                status("Done: " + (data.summary || data.action || data.detail || "applied") +
                       ". Reload the page to see the new state.", true);
              } else {
                var why = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
                status("Refused (HTTP " + response.status + "): " + why, false);
              }
            });
          })
          .catch(function (error) { status("Failed: " + error, false); })
          .finally(function () { button.disabled = false; });
      });
    });
  });
})();
