// Keyboard navigation of the queue: j / k move between cases, Enter opens the current one
// (links are focusable, so Tab works too). No other script runs on these pages.
(function () {
  function links() { return Array.prototype.slice.call(document.querySelectorAll(".case-link")); }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) return;
    if (event.key !== "j" && event.key !== "k") return;
    var all = links();
    if (!all.length) return;
    var at = all.indexOf(document.activeElement);
    var next = event.key === "j" ? Math.min(at + 1, all.length - 1) : Math.max(at - 1, 0);
    all.forEach(function (a) { a.classList.remove("current"); });
    all[next].classList.add("current");
    all[next].focus();
    event.preventDefault();
  });
})();
