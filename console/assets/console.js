// civex console: the one script. Pages work without it; it only wires the
// print button (inline handlers are not allowed by the page's CSP).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
});
