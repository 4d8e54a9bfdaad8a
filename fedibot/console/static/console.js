// The only script: ask before destructive actions (forms with data-confirm). Without
// JavaScript the forms work the same, just without the question.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
