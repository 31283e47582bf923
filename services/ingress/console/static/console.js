// The ops console's only script: refresh marked parts of a page, and "select all" checkboxes.
// An element with data-refresh="N" is replaced every N seconds by the same element of a fresh copy of the
// page (fetched with the session cookie); a page that now asks to sign in is reloaded instead.
(function () {
  function refresh(el) {
    var seconds = parseFloat(el.getAttribute("data-refresh"));
    if (!seconds) return;
    setTimeout(function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected && r.url.indexOf("/console/login") >= 0) { window.location.reload(); return null; }
          return r.text();
        })
        .then(function (html) {
          if (html === null) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
          if (fresh) { el.replaceWith(fresh); refresh(fresh); } else { refresh(el); }
        })
        .catch(function () { refresh(el); });
    }, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh][id]").forEach(refresh);
    document.querySelectorAll("input[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        var name = box.getAttribute("data-select-all");
        box.form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (c) { c.checked = box.checked; });
      });
    });
  });
})();
