// TrackLayer console: the only script besides htmx (no inline script anywhere; CSP script-src 'self').
// 1. Every htmx request carries the page's CSRF token (from <meta name="csrf-token">) as X-CSRF-Token.
// 2. Buttons with data-copy copy the text of the element whose id they name.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    document.addEventListener("htmx:configRequest", function (e) {
      e.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
    });
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
})();
