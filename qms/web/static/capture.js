// Step forms: the live check (what the engine will say, asked of the server as the form is
// filled in) and label scanning (a keyboard-wedge scanner types into a field and ends with
// Enter). Without this file the form still works: sending it shows the same result.
(function () {
  "use strict";

  function post(url, data) {
    return fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.json();
    });
  }

  function list(box, items, className) {
    items.forEach(function (text) {
      var line = document.createElement("div");
      line.className = className;
      line.textContent = text;
      box.appendChild(line);
    });
  }

  function liveCheck(form) {
    var box = form.querySelector(".live-check");
    if (!box) { return; }
    var asked = (form.liveAsked = (form.liveAsked || 0) + 1);
    post(form.dataset.check, new FormData(form)).then(function (result) {
      if (asked !== form.liveAsked) { return; }  // a later check is on its way
      box.textContent = "";
      list(box, result.errors, "field-error");
      list(box, result.findings, "finding sev-major");
      list(box, result.due, "due-line");
      var reason = form.querySelector("textarea[name=reason]");
      if (reason) { reason.required = result.findings.length > 0; }
    }).catch(function () { box.textContent = ""; });
  }

  function scan(form, input) {
    var data = new FormData();
    data.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
    data.append("code", input.value);
    var live = document.getElementById(input.id + "-live");
    post(form.dataset.scan, data).then(function (result) {
      if (live) { live.textContent = ""; }
      if (!result.valid) {
        input.setCustomValidity(result.problems.join("; "));
        input.setAttribute("aria-invalid", "true");
        if (live) {
          live.setAttribute("role", "alert");
          live.className = "live field-error";
          live.textContent = result.problems.join("; ");
        }
        return;
      }
      input.setCustomValidity("");
      input.removeAttribute("aria-invalid");
      input.value = result.normalised;
      Object.keys(result.fills).forEach(function (key) {
        var other = form.querySelector("[name='f-" + key + "']");
        if (other && other !== input && !other.value) { other.value = result.fills[key]; }
      });
      if (live) { live.className = "live"; }
      liveCheck(form);
    });
  }

  document.querySelectorAll("form[data-check]").forEach(function (form) {
    var timer = null;
    function later() {
      clearTimeout(timer);
      timer = setTimeout(function () { liveCheck(form); }, 300);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.querySelectorAll("input.scan").forEach(function (input) {
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault();  // the scanner's Enter ends the scan, not the form
          scan(form, input);
        }
      });
      input.addEventListener("input", function () { input.setCustomValidity(""); });
      input.addEventListener("change", function () { scan(form, input); });
    });
  });
})();
