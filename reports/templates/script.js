// Sortable tables without a network: click a header; numbers sort numerically, missing values go last.
function cellKey(row, col) {
  const cell = row.cells[col];
  if (!cell) return null;
  const value = cell.dataset.value;
  if (value !== undefined && value !== "" && !isNaN(parseFloat(value))) return parseFloat(value);
  const text = cell.textContent.trim();
  return text === "" || text === "–" ? null : text;
}
function sortBy(th) {
  const table = th.closest("table");
  const body = table.querySelector("tbody.sortable");
  const col = Number(th.dataset.col);
  const ascending = th.dataset.order !== "asc";
  table.querySelectorAll("th[data-col]").forEach(h => delete h.dataset.order);
  th.dataset.order = ascending ? "asc" : "desc";
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellKey(a, col), y = cellKey(b, col);
    if (x === null || y === null) return (x === null) - (y === null);
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return ascending ? order : -order;
  });
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll("th[data-col]").forEach(th => th.addEventListener("click", () => sortBy(th)));
// Record on the page whether every embedded image decoded (the browser test reads these attributes).
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(img => !img.complete || img.naturalWidth === 0);
  broken.forEach(img => img.setAttribute("data-broken", "true"));
  document.body.dataset.imagesTotal = String(images.length);
  document.body.dataset.imagesBroken = String(broken.length);
});
