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
