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

// Recordings: the signed link in the page expires after a few minutes, so the player asks for
// a fresh one each time it is played, and says so plainly when a recording cannot be loaded.
// "Play from here" links on a risk flag seek the player instead of opening the raw file.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("audio.player[data-fresh-src]").forEach(function (audio) {
    var message = audio.parentNode.querySelector(".player-error");
    var freshAt = 0;  // when the current src was fetched (links live ten minutes; renewed after five)
    var retried = false;
    function isFresh() { return Date.now() - freshAt < 300000; }
    function showError(text) {
      if (!message) { return; }
      message.textContent = text;
      message.hidden = false;
    }
    function refresh(seekTo) {
      return fetch(audio.getAttribute("data-fresh-src"), {credentials: "same-origin", cache: "no-store",
                                                           headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (response.redirected) { throw new Error("You are signed out: sign in again to play this recording."); }
          if (!response.ok) { throw new Error(response.status === 401 || response.status === 403 ?
            "You are signed out: sign in again to play this recording." : "The recording link could not be renewed."); }
          return response.json();
        })
        .then(function (data) {
          freshAt = Date.now();
          audio.src = data.url;
          if (seekTo) { audio.currentTime = seekTo; }
          if (message) { message.hidden = true; }
          return audio.play();
        });
    }
    audio.addEventListener("play", function () {
      if (isFresh()) { return; }
      var at = audio.currentTime;
      audio.pause();
      refresh(at).catch(function (error) { showError(error.message); });
    });
    audio.addEventListener("playing", function () { retried = false; });
    audio.addEventListener("error", function () {
      if (!retried && audio.getAttribute("src")) {
        retried = true;
        refresh(audio.currentTime).catch(function (error) { showError(error.message); });
        return;
      }
      showError("This recording could not be loaded (its link expired or the file is missing). " +
                "Reload the page to try again.");
    });
    document.querySelectorAll("a.seek[data-start]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var start = parseFloat(link.getAttribute("data-start")) || 0;
        audio.focus();
        if (isFresh()) {
          audio.currentTime = start;
          audio.play().catch(function () { showError("The recording could not be played."); });
        } else {
          refresh(start).catch(function (error) { showError(error.message); });
        }
      });
    });
  });
});
