// OpenConsole admin console: optional niceties. Every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // A copy button on every command and on a new token's secret.
  document.querySelectorAll("details.cli pre, [data-copy]").forEach(function (el) {
    if (!navigator.clipboard) return;
    var b = document.createElement("button");
    b.type = "button";
    b.className = "copy";
    b.textContent = "Copy";
    b.addEventListener("click", function () {
      var text = el.tagName === "INPUT" ? el.value : el.textContent.replace(/Copy(ied)?$/, "");
      navigator.clipboard.writeText(text.trim()).then(function () { b.textContent = "Copied"; });
    });
    if (el.tagName === "INPUT") el.insertAdjacentElement("afterend", b); else el.appendChild(b);
  });
});
