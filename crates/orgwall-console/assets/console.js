// orgwall console: progressive niceties only. Every page works without this file.
// - forms with data-confirm ask before submitting;
// - a submitted form shows a loading state and cannot be sent twice;
// - [data-copy] buttons copy the text of the element they name (a new API key).
"use strict";

document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  if (form.dataset.sending === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sending = "1";
  form.setAttribute("aria-busy", "true");
  var buttons = form.querySelectorAll("button[type=submit]");
  buttons.forEach(function (b) {
    b.classList.add("loading");
    b.setAttribute("aria-disabled", "true");
  });
  // A download or a back navigation leaves the page as it was: allow sending again.
  window.setTimeout(function () {
    form.dataset.sending = "";
    form.removeAttribute("aria-busy");
    buttons.forEach(function (b) {
      b.classList.remove("loading");
      b.removeAttribute("aria-disabled");
    });
  }, 8000);
});

document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var label = button.textContent;
    button.textContent = "Copied";
    window.setTimeout(function () { button.textContent = label; }, 2000);
  });
});

// Buttons with data-copy are useless without this script: show them only here.
document.querySelectorAll("[data-copy]").forEach(function (b) { b.hidden = false; });
