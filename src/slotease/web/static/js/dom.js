// DOM helpers shared by every page script.

export const $ = (id) => document.getElementById(id);

// The page's parameters, rendered by the server as data attributes of <main id="main">.
export function dataset() {
  return $("main").dataset;
}

// Builds DOM nodes (never HTML strings), so API data cannot inject markup.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}
