// peerline staff pages: small progressive enhancements; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // A second tap on a slow phone connection must not send the same action twice.
  document.querySelectorAll("form[method='post']").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type='submit']").forEach(function (button) {
        window.setTimeout(function () { button.disabled = true; }, 0);
      });
    });
  });
  // Move focus to an error so keyboard and screen-reader users land on what needs fixing.
  var error = document.querySelector(".message-error");
  if (error) {
    error.setAttribute("tabindex", "-1");
    error.focus();
  }
});

// Recordings: the signed link in the page expires after ten minutes, so the player keeps a
// fresh one (renewed in the background while it waits to be played, and again at once if a
// link fails mid-play), and says so plainly when a recording cannot be loaded. "Play from"
// links on a risk flag seek the player instead of opening the raw file.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("audio.player[data-fresh-src]").forEach(function (audio) {
    var message = audio.parentNode.querySelector(".player-error");
    var freshAt = Date.now();  // the page's own link was made just now
    var retried = false;
    var STALE_MS = 4 * 60 * 1000;
    function showError(text) {
      if (!message) { return; }
      message.textContent = text;
      message.hidden = false;
    }
    function idle() { return audio.paused && audio.currentTime === 0; }
    function fetchLink() {
      return fetch(audio.getAttribute("data-fresh-src"), {credentials: "same-origin", cache: "no-store",
                                                           headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (response.redirected) { throw new Error("You are signed out: sign in again to play this recording."); }
          if (!response.ok) { throw new Error(response.status === 403 ?
            "You are not allowed to play this recording." : "The recording link could not be renewed."); }
          return response.json();
        })
        .then(function (data) { freshAt = Date.now(); return data.url; });
    }
    function renewWhileIdle() {
      if (Date.now() - freshAt < STALE_MS || !idle()) { return; }
      fetchLink().then(function (url) { if (idle()) { audio.src = url; } })
        .catch(function (error) { showError(error.message); });
    }
    function playFrom(seconds) {
      var go = function () {
        audio.currentTime = seconds;
        return audio.play();
      };
      var ready = Date.now() - freshAt < STALE_MS ? Promise.resolve(null) : fetchLink();
      return ready.then(function (url) {
        if (url) { audio.src = url; }
        if (message) { message.hidden = true; }
        return go();
      });
    }
    window.setInterval(renewWhileIdle, 60 * 1000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { renewWhileIdle(); } });
    audio.addEventListener("playing", function () { retried = false; if (message) { message.hidden = true; } });
    var LOAD_FAILED = "This recording could not be loaded (the file is missing or its link expired). " +
                      "Reload the page to try again.";
    audio.addEventListener("error", function () {
      if (retried) { showError(LOAD_FAILED); return; }
      retried = true;  // one new link per failure: a link that expired mid-play, say
      var at = audio.currentTime;
      freshAt = 0;
      playFrom(at).catch(function (error) {
        if (error && error.name === "NotAllowedError") {
          showError("The recording link was renewed: press Play again.");
        } else if (error && (error.name === "NotSupportedError" || error.name === "AbortError")) {
          showError(LOAD_FAILED);  // the browser's own words ("no supported source") help nobody
        } else {
          showError((error && error.message) || LOAD_FAILED);
        }
      });
    });
    document.querySelectorAll("a.seek[data-start]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        audio.focus();
        playFrom(parseFloat(link.getAttribute("data-start")) || 0)
          .catch(function (error) { showError((error && error.message) || "The recording could not be played."); });
      });
    });
  });
});

// The live board: its lists are fetched again every few seconds and swapped in place (never
// while keyboard focus is inside them, so nobody loses their place); the polite live region
// says what changed; "Pause updates" stops it for as long as a supervisor needs.
document.addEventListener("DOMContentLoaded", function () {
  var lists = document.getElementById("board-lists");
  var controls = document.getElementById("board-controls");
  if (!lists || !controls || !window.fetch || !window.DOMParser) { return; }
  var pause = document.getElementById("board-pause");
  var live = document.getElementById("board-live");
  var seconds = parseInt(controls.getAttribute("data-interval"), 10) || 15;
  var paused = false;
  pause.hidden = false;
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.setAttribute("aria-pressed", paused ? "true" : "false");
    pause.textContent = paused ? "Resume updates" : "Pause updates";
    live.textContent = paused ? "Updates paused." : "Updates resumed.";
    if (!paused) { update(); }
  });
  function update() {
    if (paused || document.hidden || lists.contains(document.activeElement)) { return; }
    fetch(window.location.pathname, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (response.redirected || !response.ok) {
          throw new Error(response.redirected ? "You are signed out: sign in again to see the board."
                                              : "The board could not be updated (error " + response.status + ").");
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("board-lists");
        if (!fresh || paused || lists.contains(document.activeElement)) { return; }
        var before = lists.getAttribute("data-summary");
        var after = fresh.getAttribute("data-summary");
        lists.innerHTML = fresh.innerHTML;
        lists.setAttribute("data-summary", after);
        if (after !== before) { live.textContent = "Now " + after + "."; }
      })
      .catch(function (error) { live.textContent = error.message; });
  }
  window.setInterval(update, seconds * 1000);
});
