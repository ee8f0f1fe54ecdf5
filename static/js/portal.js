// The portal's own scripts. The Content Security Policy allows no inline scripts or event
// handlers: pages mark elements with data attributes, and this file gives them behaviour.
"use strict";

// A "select all" checkbox: data-select-all="CSS selector of the checkboxes it ticks".
// With data-all-matching="CSS selector of the 'all matching' checkbox" (a page that lists fewer
// than all matching rows has one): ticking all on the page means all matching, so that box is
// ticked too; unticking any row unticks it and the select-all box, as the action then applies
// to the rows still ticked only.
function setAllMatching(selectAll, checked) {
  const selector = selectAll.dataset.allMatching;
  const allMatching = selector && document.querySelector(selector);
  if (allMatching) {
    allMatching.checked = checked;
  }
}

document.addEventListener("change", function (event) {
  const box = event.target;
  const selector = box.dataset && box.dataset.selectAll;
  if (selector) {
    document.querySelectorAll(selector).forEach(function (row) {
      row.checked = box.checked;
    });
    setAllMatching(box, box.checked);
  } else if (box.type === "checkbox" && !box.checked) {
    document.querySelectorAll("[data-select-all]").forEach(function (selectAll) {
      if (box.matches(selectAll.dataset.selectAll)) {
        selectAll.checked = false;
        setAllMatching(selectAll, false);
      }
    });
  }
});

// Field groups that apply to some choices only, for example
// <fieldset data-field-group data-for-kind="pop3_smtp imap_smtp" data-for-auth-type="basic ntlm">:
// the group shows while the form's "kind" field is one of those values and its "auth_type" field
// one of these. Without JavaScript every group shows, its legend says what it is for, and the
// server ignores the fields that do not apply.
function chooserName(key) {
  // "forAuthType" -> "auth_type"
  return key.slice(3).replace(/[A-Z]/g, function (letter, index) {
    return (index ? "_" : "") + letter.toLowerCase();
  });
}

function groupApplies(form, group) {
  return Object.keys(group.dataset).every(function (key) {
    if (!/^for[A-Z]/.test(key)) {
      return true;
    }
    const chooser = form.elements.namedItem(chooserName(key));
    if (!chooser) {
      return true;
    }
    return group.dataset[key].split(/\s+/).filter(Boolean).indexOf(chooser.value) !== -1;
  });
}

function showApplyingGroups(form) {
  form.querySelectorAll("[data-field-group]").forEach(function (group) {
    group.hidden = !groupApplies(form, group);
  });
}

document.querySelectorAll("form").forEach(function (form) {
  if (form.querySelector("[data-field-group]")) {
    showApplyingGroups(form);
  }
});

document.addEventListener("change", function (event) {
  const form = event.target.form;
  if (form && form.querySelector("[data-field-group]")) {
    showApplyingGroups(form);
  }
});
