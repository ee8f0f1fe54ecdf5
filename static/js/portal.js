// The portal's own scripts. The Content Security Policy allows no inline scripts or event
// handlers: pages mark elements with data attributes, and this file gives them behaviour.
"use strict";

// A "select all" checkbox: data-select-all="CSS selector of the checkboxes it ticks".
document.addEventListener("change", function (event) {
  const selector = event.target.dataset && event.target.dataset.selectAll;
  if (selector) {
    document.querySelectorAll(selector).forEach(function (box) {
      box.checked = event.target.checked;
    });
  }
});
