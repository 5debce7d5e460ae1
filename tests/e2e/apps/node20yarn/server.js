// Dependencies installed by Yarn classic from yarn.lock; the page names the Node.js it runs on.
const http = require("http");
const ms = require("ms");

const body = `yarn app on node ${process.versions.node}, ms says ${ms(60000)}\n`;
http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(body);
  })
  .listen(process.env.PORT, "::", () => console.log(`listening on ${process.env.PORT}`));
process.on("SIGTERM", () => process.exit(0));
