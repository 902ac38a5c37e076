/* cutover-report --format html: filters and drill-down (inlined by the
   program; allowed by the page's Content-Security-Policy by its hash).
   It reads only the page and never builds markup from text. */
(function () {
    "use strict";
    var kinds = ["route", "store", "channel"];
    var form = document.getElementById("filters");
    var selects = form ? form.querySelectorAll("select[data-filter]") : [];
    var marked = document.querySelectorAll(
        "[data-route], [data-store], [data-channel]");

    function fill(select) {
        var kind = select.getAttribute("data-filter");
        var seen = {};
        var values = [];
        var i, v, opt;

        for (i = 0; i < marked.length; i++) {
            v = marked[i].getAttribute("data-" + kind);
            if (v !== null && !seen[v]) {
                seen[v] = true;
                values.push(v);
            }
        }
        values.sort();
        for (i = 0; i < values.length; i++) {
            opt = document.createElement("option");
            opt.value = values[i];
            opt.textContent = values[i] === "" ? "(none)" : values[i];
            select.appendChild(opt);
        }
    }

    function apply() {
        var want = {};
        var i, k, v, hide, hidden = 0;

        for (i = 0; i < selects.length; i++) {
            if (selects[i].selectedIndex > 0) {
                want[selects[i].getAttribute("data-filter")] =
                    selects[i].value;
            }
        }
        for (i = 0; i < marked.length; i++) {
            hide = false;
            for (k = 0; k < kinds.length; k++) {
                v = marked[i].getAttribute("data-" + kinds[k]);
                if (v !== null && want.hasOwnProperty(kinds[k])
                    && v !== want[kinds[k]]) {
                    hide = true;
                }
            }
            marked[i].classList.toggle("filtered", hide);
            hidden += hide ? 1 : 0;
        }
        document.getElementById("filter-note").textContent =
            hidden ? hidden + " rows and items hidden by the filters" : "";
    }

    function openTarget() {
        var id = decodeURIComponent(location.hash.slice(1));
        var el = id ? document.getElementById(id) : null;

        if (el && el.tagName === "DETAILS") {
            el.open = true;
            el.scrollIntoView();
        }
    }

    if (form) {
        for (var i = 0; i < selects.length; i++) {
            fill(selects[i]);
            selects[i].addEventListener("change", apply);
        }
        form.hidden = false;
    }
    window.addEventListener("hashchange", openTarget);
    document.addEventListener("click", function (ev) {
        var a = ev.target.closest ? ev.target.closest("a.drill") : null;
        var pick = ev.target.closest ? ev.target.closest("a.pick") : null;
        var sel, el, i;

        if (pick && form) {
            /* a route of the routes table: its fields, its samples */
            sel = form.querySelector("select[data-filter=route]");
            for (i = 0; i < sel.options.length; i++) {
                if (sel.options[i].value === pick.textContent) {
                    sel.selectedIndex = i;
                }
            }
            apply();
        }
        if (a) {
            el = document.getElementById(a.getAttribute("href").slice(1));
            if (el) {
                el.open = true;
            }
        }
    });
    window.addEventListener("beforeprint", function () {
        var d = document.querySelectorAll("details");
        for (var i = 0; i < d.length; i++) {
            d[i].setAttribute("data-was", d[i].open ? "1" : "0");
            d[i].open = true;
        }
    });
    window.addEventListener("afterprint", function () {
        var d = document.querySelectorAll("details[data-was]");
        for (var i = 0; i < d.length; i++) {
            d[i].open = d[i].getAttribute("data-was") === "1";
        }
    });
    openTarget();
})();
