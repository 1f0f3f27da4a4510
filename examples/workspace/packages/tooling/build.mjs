#!/usr/bin/env node
// Bundles src/main.js into dist/assets/<name>-<hash>.js and writes dist/index.html pointing at it.
import { build } from "esbuild";
import { readFileSync, writeFileSync, rmSync } from "node:fs";

const pkg = JSON.parse(readFileSync("package.json", "utf8"));
const base = process.env.PUBLIC_BASE ?? `/${pkg.name.split("/").pop()}/`;
rmSync("dist", { recursive: true, force: true });
const result = await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: "es2020",
  outdir: "dist/assets",
  entryNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map((p) => p.replace(/^dist\//, ""));
const js = outputs.find((p) => p.endsWith(".js"));
const css = outputs.find((p) => p.endsWith(".css"));
const html = readFileSync("index.html", "utf8")
  .replace("%SCRIPT%", base + js)
  .replace("%STYLE%", css ? `<link rel="stylesheet" href="${base + css}">` : "");
writeFileSync("dist/index.html", html);
console.log(`${pkg.name}: ${outputs.length} files, ${js}`);
