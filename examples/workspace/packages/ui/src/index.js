// Shared by every app: a tiny renderer.
export function card(title, body) {
  const el = document.createElement("section");
  el.className = "card";
  el.innerHTML = `<h2>${title}</h2><p>${body}</p>`;
  return el;
}

export function mount(root, ...children) {
  root.replaceChildren(...children);
}
