/* Roster's page script, besides htmx: the keyboard moves through results, focus follows
   what a request changed, and empty filters stay out of the address. Nothing here reads
   or keeps a credential: the session cookie is HttpOnly. */
(function () {
  "use strict";

  var LINKS = "#rows a.person, #accounts a, #choices a";
  var SEARCHES = "#search, #account-search, #choice-search";

  function links() {
    return Array.prototype.slice.call(document.querySelectorAll(LINKS));
  }

  function typingIn(element) {
    return element.matches("input, select, textarea, [contenteditable]");
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/" && !typingIn(target)) {
      var search = document.querySelector(SEARCHES);
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    var all = links();
    var index = all.indexOf(target);
    var down = event.key === "ArrowDown";
    var next = null;
    if (target.matches(SEARCHES)) {
      next = down ? all[0] : null;
    } else if (index >= 0) {
      next = down ? all[index + 1] || document.querySelector("#more-row a") : all[index - 1] || document.querySelector(SEARCHES);
    } else if (target.matches("#more-row a") && !down) {
      next = all[all.length - 1];
    }
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });

  var shownBeforeMore = -1;

  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.formData;
    if (event.detail.verb !== "get" || !form) return;
    Array.from(form.keys()).forEach(function (name) {
      if (form.getAll(name).every(function (value) { return value === ""; })) form.delete(name);
    });
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var notice = document.getElementById("notice");
    if (notice) notice.textContent = "";
    shownBeforeMore = event.detail.elt.closest("#more-row") ? links().length : -1;
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    if (shownBeforeMore >= 0) {
      var first = links()[shownBeforeMore];
      shownBeforeMore = -1;
      if (first) first.focus();
      return;
    }
    var card = document.getElementById("card");
    if (!card || !card.contains(event.detail.elt)) return;
    var invalid = card.querySelector("[aria-invalid=true]");
    var lost = !document.activeElement || document.activeElement === document.body;
    if (invalid) invalid.focus();
    else if (lost && document.getElementById("saved")) document.getElementById("saved").focus();
  });

  document.addEventListener("click", function (event) {
    // A filter's picker takes the search as typed so far (the link has the page's).
    var picker = event.target.closest("a[data-finder]");
    if (picker) {
      var query = new URLSearchParams();
      new FormData(document.getElementById(picker.dataset.finder)).forEach(function (value, name) {
        if (value !== "") query.append(name, value);
      });
      picker.search = query.toString();
    }
    if (event.target.matches("[data-dismiss]")) {
      document.getElementById("notice").textContent = "";
    }
  });
})();
