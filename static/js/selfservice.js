// The sync filter editor of the self-service pages: condition rows in AND/OR groups that
// write the filter's rules as JSON into the form's "rules" text box, and a live preview.
//
// Progressive enhancement: without JavaScript the page is a form with the rules as a JSON
// text box and a Preview button. With it, the text box is hidden behind the row editor (a
// button shows it again), and the preview follows the conditions as they change. The
// Content Security Policy allows no inline scripts, handlers or styles: everything here is
// built with DOM methods, and shown or hidden with the "hidden" attribute.
"use strict";

(function () {
  const form = document.getElementById("filter-form");
  const specNode = document.getElementById("rule-editor-spec");
  if (!form || !specNode) {
    return;
  }
  const spec = JSON.parse(specNode.textContent);
  const L = spec.labels;
  const root = document.getElementById("rule-editor");
  const textBox = form.elements.namedItem("rules");
  const textWrap = document.getElementById("rules-text");
  const toggle = document.getElementById("rules-toggle");
  const previewBox = document.getElementById("filter-preview");
  const previewButton = document.getElementById("preview-button");
  const recordTypeInput = form.elements.namedItem("record_type");
  const organizationInput = form.elements.namedItem("organization");

  let state = null; // the rules: {match, rules: [row or group]}
  let uid = 0;

  // The rules model -----------------------------------------------------------------------

  function recordType() {
    return recordTypeInput ? recordTypeInput.value : root.dataset.recordType;
  }

  function fields() {
    return spec.record_types[recordType()] || [];
  }

  function fieldSpec(name) {
    return fields().find(function (f) { return f.name === name; }) || fields()[0];
  }

  function isGroup(item) {
    return item && typeof item === "object" && Array.isArray(item.rules);
  }

  function options(kind, field) {
    if (kind === "user") { return spec.users; }
    if (kind === "account") { return spec.accounts; }
    if (kind === "contact") { return spec.contacts; }
    return field.choices;
  }

  function defaultValue(field, operator) {
    if (spec.no_value.indexOf(operator) !== -1) { return null; }
    if (spec.day_ops.indexOf(operator) !== -1) { return 0; }
    if (spec.list_ops.indexOf(operator) !== -1) { return []; }
    if (field.kind === "text") { return ""; }
    const choices = options(field.kind, field);
    if (!choices.length) { return ""; }
    return typed(field, choices[0][0]);
  }

  // A value as the server wants it: yes/no as booleans, user ids as numbers.
  function typed(field, raw) {
    if (field.kind === "bool") { return raw === "true"; }
    if (field.kind === "user") { return raw === "" ? "" : Number(raw); }
    return raw;
  }

  // "is me" where a field offers it (the owner): what a person means most often.
  function firstOperator(field) {
    const isMe = field.operators.find(function (op) { return op[0] === "is_me"; });
    return (isMe || field.operators[0])[0];
  }

  function newRow() {
    const field = fields()[0];
    const operator = firstOperator(field);
    return {field: field.name, operator: operator, value: defaultValue(field, operator)};
  }

  // Keep rows valid for the record type chosen now (a new filter may change it).
  function fit(group) {
    group.rules.forEach(function (item, index) {
      if (isGroup(item)) {
        fit(item);
        return;
      }
      const field = fieldSpec(item.field);
      if (!field) { return; }
      if (field.name !== item.field) {
        group.rules[index] = {field: field.name, operator: firstOperator(field), value: null};
        group.rules[index].value = defaultValue(field, group.rules[index].operator);
      } else if (!field.operators.some(function (op) { return op[0] === item.operator; })) {
        item.operator = firstOperator(field);
        item.value = defaultValue(field, item.operator);
      }
    });
  }

  function write() {
    textBox.value = JSON.stringify(state, null, 2);
  }

  // Building the editor ---------------------------------------------------------------------

  function element(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") {
        node.textContent = attrs[key];
      } else {
        node.setAttribute(key, attrs[key]);
      }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function select(label, choices, selected, multiple) {
    const box = element("select", {"class": "form-select form-select-sm", "aria-label": label});
    if (multiple) {
      box.multiple = true;
      box.size = Math.min(Math.max(choices.length, 2), 5);
    }
    const wanted = (Array.isArray(selected) ? selected : [selected]).map(String);
    choices.forEach(function (choice) {
      const option = element("option", {value: choice[0], text: choice[1]});
      option.selected = wanted.indexOf(String(choice[0])) !== -1;
      box.appendChild(option);
    });
    // A stored value the person may not see by name still shows, as its id.
    wanted.forEach(function (value) {
      if (value !== "" && value !== "null" && !choices.some(function (c) { return String(c[0]) === value; })) {
        const option = element("option", {value: value, text: value});
        option.selected = true;
        box.appendChild(option);
      }
    });
    return box;
  }

  function changed() {
    write();
    schedulePreview();
  }

  function valueControl(row, field, path) {
    const label = L.value + " " + path;
    const operator = row.operator;
    if (spec.no_value.indexOf(operator) !== -1) {
      return null;
    }
    if (spec.day_ops.indexOf(operator) !== -1) {
      const input = element("input", {
        type: "number", step: "1", min: String(-spec.max_days), max: String(spec.max_days),
        "class": "form-control form-control-sm", "aria-label": label, title: L.days_hint,
      });
      input.value = row.value === null || row.value === undefined ? "0" : String(row.value);
      input.addEventListener("input", function () {
        row.value = input.value === "" ? "" : Number(input.value);
        changed();
      });
      return input;
    }
    const list = spec.list_ops.indexOf(operator) !== -1;
    if (field.kind === "text") {
      const input = element("input", {type: "text", "class": "form-control form-control-sm", "aria-label": label});
      input.value = list ? (row.value || []).join(", ") : (row.value || "");
      if (list) { input.setAttribute("title", L.values_hint); }
      input.addEventListener("input", function () {
        row.value = list
          ? input.value.split(",").map(function (v) { return v.trim(); }).filter(Boolean)
          : input.value;
        changed();
      });
      return input;
    }
    const box = select(label, options(field.kind, field), row.value, list);
    box.addEventListener("change", function () {
      const chosen = Array.from(box.selectedOptions).map(function (o) { return typed(field, o.value); });
      row.value = list ? chosen : chosen[0];
      changed();
    });
    return box;
  }

  function renderRow(row, group, index, path) {
    const field = fieldSpec(row.field);
    const item = element("div", {"class": "row g-2 align-items-center mb-2 rule-row", "data-path": path});
    const number = element("div", {"class": "col-auto small text-muted rule-number", text: path});
    const fieldBox = select(L.field + " " + path, fields().map(function (f) { return [f.name, f.label]; }), field.name);
    fieldBox.classList.add("rule-field");
    fieldBox.addEventListener("change", function () {
      const chosen = fieldSpec(fieldBox.value);
      row.field = chosen.name;
      row.operator = firstOperator(chosen);
      row.value = defaultValue(chosen, row.operator);
      render();
      changed();
    });
    const operatorBox = select(L.operator + " " + path, field.operators, row.operator);
    operatorBox.classList.add("rule-operator");
    operatorBox.addEventListener("change", function () {
      const before = row.operator;
      row.operator = operatorBox.value;
      const kinds = [spec.no_value, spec.day_ops, spec.list_ops];
      const sameKind = kinds.every(function (ops) { return (ops.indexOf(before) !== -1) === (ops.indexOf(row.operator) !== -1); });
      if (!sameKind) { row.value = defaultValue(field, row.operator); }
      render();
      changed();
    });
    const value = valueControl(row, field, path);
    if (value) { value.classList.add("rule-value"); }
    const remove = element("button", {type: "button", "class": "btn btn-sm btn-outline-danger", text: L.remove});
    remove.setAttribute("aria-label", L.remove + " " + path);
    remove.addEventListener("click", function () {
      group.rules.splice(index, 1);
      render();
      changed();
    });
    item.appendChild(number);
    item.appendChild(element("div", {"class": "col-12 col-md-4 col-xl-3"}, [fieldBox]));
    item.appendChild(element("div", {"class": "col-12 col-md-3"}, [operatorBox]));
    item.appendChild(element("div", {"class": "col-12 col-md"}, value ? [value] : []));
    item.appendChild(element("div", {"class": "col-auto"}, [remove]));
    return item;
  }

  function renderGroup(group, depth, parent, index, path) {
    const id = "rule-group-" + (++uid);
    const box = element("div", {"class": "border rounded p-2 mb-2 rule-group", role: "group", "aria-labelledby": id});
    const head = element("div", {"class": "d-flex flex-wrap align-items-center gap-2 mb-2"});
    head.appendChild(element("span", {id: id, "class": "small fw-semibold", text: path ? L.group + " " + path : L.match}));
    const match = select(L.match + (path ? " " + path : ""), [["all", L.all], ["any", L.any]], group.match || "all");
    match.classList.add("w-auto", "rule-match");
    match.addEventListener("change", function () {
      group.match = match.value;
      changed();
    });
    head.appendChild(match);
    if (parent) {
      const remove = element("button", {type: "button", "class": "btn btn-sm btn-outline-danger ms-auto", text: L.remove_group});
      remove.addEventListener("click", function () {
        parent.rules.splice(index, 1);
        render();
        changed();
      });
      head.appendChild(remove);
    }
    box.appendChild(head);
    if (!group.rules.length) {
      box.appendChild(element("p", {"class": "small text-muted mb-2", text: L.empty}));
    }
    group.rules.forEach(function (item, n) {
      const itemPath = path ? path + "." + (n + 1) : String(n + 1);
      box.appendChild(isGroup(item)
        ? renderGroup(item, depth + 1, group, n, itemPath)
        : renderRow(item, group, n, itemPath));
    });
    const buttons = element("div", {"class": "d-flex flex-wrap gap-2"});
    const addRow = element("button", {type: "button", "class": "btn btn-sm btn-outline-primary add-row", text: L.add_row});
    addRow.addEventListener("click", function () {
      group.rules.push(newRow());
      render();
      changed();
      const rows = root.querySelectorAll('.rule-row[data-path="' + (path ? path + "." : "") + group.rules.length + '"] .rule-field');
      if (rows.length) { rows[0].focus(); }
    });
    buttons.appendChild(addRow);
    if (depth < spec.max_depth) {
      const addGroup = element("button", {type: "button", "class": "btn btn-sm btn-outline-secondary add-group", text: L.add_group});
      addGroup.addEventListener("click", function () {
        group.rules.push({match: "any", rules: [newRow()]});
        render();
        changed();
      });
      buttons.appendChild(addGroup);
    }
    box.appendChild(buttons);
    return box;
  }

  function render() {
    uid = 0;
    root.replaceChildren(renderGroup(state, 1, null, 0, ""));
  }

  // Switching between the editor and the JSON text ------------------------------------------

  function parseText() {
    try {
      const parsed = JSON.parse(textBox.value.trim() || '{"match": "all", "rules": []}');
      return isGroup(parsed) ? parsed : null;
    } catch (error) {
      return null;
    }
  }

  function showEditor() {
    const parsed = parseText();
    if (!parsed) {
      return false;
    }
    state = parsed;
    fit(state);
    render();
    write();
    root.hidden = false;
    textWrap.hidden = true;
    toggle.textContent = toggle.dataset.showText;
    return true;
  }

  function showText() {
    root.hidden = true;
    textWrap.hidden = false;
    toggle.textContent = toggle.dataset.showEditor;
  }

  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    if (root.hidden) {
      showEditor();
    } else {
      showText();
    }
  });

  // The text stays if it cannot be read as rules (the error below it says why).
  if (!showEditor()) {
    showText();
  }
  textBox.addEventListener("input", schedulePreview);
  if (recordTypeInput) {
    recordTypeInput.addEventListener("change", function () {
      if (!root.hidden) {
        fit(state);
        render();
        write();
      }
      schedulePreview();
    });
  }
  if (organizationInput && organizationInput.tagName === "SELECT") {
    organizationInput.addEventListener("change", schedulePreview);
  }

  // The preview -----------------------------------------------------------------------------

  let timer = null;
  let controller = null;
  let sequence = 0;

  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(runPreview, 400);
  }

  function runPreview() {
    clearTimeout(timer);
    const data = new FormData(form);
    data.append("fragment", "1");
    if (controller) {
      controller.abort();
    }
    controller = new AbortController();
    const mine = ++sequence;
    previewBox.setAttribute("aria-busy", "true");
    fetch(form.dataset.previewUrl, {method: "POST", body: data, credentials: "same-origin", signal: controller.signal})
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.text();
      })
      .then(function (html) {
        if (mine === sequence) {
          previewBox.innerHTML = html;
          previewBox.removeAttribute("aria-busy");
        }
      })
      .catch(function (error) {
        if (error.name !== "AbortError" && mine === sequence) {
          previewBox.replaceChildren(element("p", {"class": "small text-danger", text: previewBox.dataset.error}));
          previewBox.removeAttribute("aria-busy");
        }
      });
  }

  previewButton.addEventListener("click", function (event) {
    event.preventDefault();
    runPreview();
  });

  runPreview();
})();
