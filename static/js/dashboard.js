// Draws each chart from the figure JSON embedded in the page (no inline script, no other host),
// and makes the range and granularity controls apply as soon as they change.
(function () {
  "use strict";

  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) return;
    var figure = JSON.parse(source.textContent);
    var options = Object.assign({}, config, { topojsonURL: el.dataset.topojson });
    window.Plotly.newPlot(el, figure.data, figure.layout, options).then(function () {
      el.closest("figure").classList.add("drawn");
    });
  }

  function controls() {
    var form = document.querySelector("form.controls");
    if (!form) return;
    var custom = form.querySelector(".custom-dates");
    function sync() {
      var checked = form.querySelector("input[name=range]:checked");
      var isCustom = checked && checked.value === "custom";
      custom.hidden = !isCustom;
      custom.querySelectorAll("input").forEach(function (i) { i.disabled = !isCustom; });
    }
    form.addEventListener("change", function (event) {
      sync();
      var t = event.target;
      var customIncomplete = t.name === "range" && t.value === "custom";
      if (t.type === "radio" && !customIncomplete) form.submit();
    });
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    controls();
    document.querySelectorAll(".plot[data-figure]").forEach(draw);
  });
})();
