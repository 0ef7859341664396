package browsertest

import "html/template"

// pageData fills pageTemplate. html/template escapes Src as a URL
// attribute (an unsafe scheme becomes "#ZgotmplZ") and Config as a
// JavaScript value.
type pageData struct {
	Video  bool
	Src    string
	Config pageConfig
}

type pageConfig struct {
	Mime      string `json:"mime"`      // canPlayType's argument; "" skips it
	TimeoutMS int64  `json:"timeoutMS"` // the page reports a timeout after this
	Through   bool   `json:"through"`   // play to the end at playbackRate instead of stopping at readyState 4
	Rate      int    `json:"rate"`      // playbackRate when Through
}

// pageTemplate holds the element and the script that watches it. The script
// reports once, by POSTing JSON to /result, on the first of: readyState 4
// (or, when playing through, the ended event), a MediaError, or its
// timeout. Events and a 100 ms poll both check, so a state reached before
// the listeners were attached is not missed.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html>
<head><meta charset="utf-8"><title>browsertest</title></head>
<body>
{{if .Video}}<video id="m" preload="auto" muted playsinline src="{{.Src}}"></video>{{else}}<audio id="m" preload="auto" src="{{.Src}}"></audio>{{end}}
<script>
"use strict";
(function () {
  const cfg = {{.Config}};
  const m = document.getElementById("m");
  const t0 = performance.now();
  const events = [];
  const errorNames = ["", "MEDIA_ERR_ABORTED", "MEDIA_ERR_NETWORK", "MEDIA_ERR_DECODE", "MEDIA_ERR_SRC_NOT_SUPPORTED"];
  let done = false, poll = 0, timer = 0;

  function note(what) {
    events.push("+" + Math.round(performance.now() - t0) + "ms " + what + " rs=" + m.readyState);
  }
  function report(err) {
    if (done) return;
    done = true;
    clearInterval(poll);
    clearTimeout(timer);
    const body = JSON.stringify({
      readyState: m.readyState,
      networkState: m.networkState,
      duration: String(m.duration),
      currentTime: String(m.currentTime),
      ended: m.ended,
      error: err,
      canPlayType: cfg.mime ? m.canPlayType(cfg.mime) : "",
      events: events,
    });
    fetch("/result", {method: "POST", headers: {"Content-Type": "application/json"}, body: body});
  }
  function check() {
    if (m.error) {
      report((errorNames[m.error.code] || "MEDIA_ERR") + " (" + m.error.code + "): " + (m.error.message || "no message"));
    } else if (cfg.through ? m.ended : m.readyState >= 4) {
      report("");
    }
  }
  for (const name of ["loadstart", "loadedmetadata", "loadeddata", "canplay", "canplaythrough", "durationchange",
      "suspend", "stalled", "waiting", "playing", "ended", "abort", "emptied", "error"]) {
    m.addEventListener(name, function () { note(name); check(); });
  }
  if (cfg.through) {
    m.addEventListener("loadedmetadata", function () {
      m.preservesPitch = false; // resampling is cheaper than time-stretching
      m.playbackRate = cfg.rate;
      m.play().then(function () { note("play() resolved"); }, function (e) {
        note("play() rejected: " + e);
        setTimeout(function () { check(); report("play() rejected: " + e); }, 0); // a MediaError says more
      });
    }, {once: true});
  }
  poll = setInterval(check, 100);
  timer = setTimeout(function () {
    report("timeout after " + cfg.timeoutMS + " ms at readyState " + m.readyState + ", networkState " + m.networkState +
      ", currentTime " + m.currentTime);
  }, cfg.timeoutMS);
  check();
})();
</script>
</body>
</html>
`))
