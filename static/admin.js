// The admin console's small helpers (no inline scripts: the Content-Security-Policy forbids them).
// A button with data-copy="<selector>" copies that field's value.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  const status = document.querySelector("[data-copy-status]");
  if (!field) return;
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    if (status) status.textContent = "Lien copié.";
  } catch (error) {
    if (status) status.textContent = "Sélectionné : copiez-le avec votre clavier ou un appui long.";
  }
});
