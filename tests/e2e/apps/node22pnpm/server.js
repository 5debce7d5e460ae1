// Dependencies installed by pnpm from pnpm-lock.yaml, a build step with a devDependency (pruned after
// it); the page names the Node.js it runs on, which must have Promise.withResolvers (Node.js 22+).
const http = require("http");
const fs = require("fs");
const ms = require("ms");

if (typeof Promise.withResolvers !== "function") {
  console.error(`this app needs Node.js 22 or later (Promise.withResolvers); this is Node.js ${process.versions.node}`);
  process.exit(1);
}
let pruned = "devDependencies pruned";
try {
  require.resolve("is-number");
  pruned = "devDependencies still installed";
} catch (e) {}
const body = `pnpm app on node ${process.versions.node}, ms says ${ms(60000)}; ${fs.readFileSync("built.txt", "utf8")}; ${pruned}\n`;
const { promise: listening, resolve } = Promise.withResolvers();
const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(body);
});
server.listen(process.env.PORT, "::", resolve);
listening.then(() => console.log(`listening on ${process.env.PORT}`));
process.on("SIGTERM", () => process.exit(0));
