const http = require("http");
const ms = require("ms");
http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(`node says ${ms(60000)} is one minute\n`);
  })
  .listen(process.env.PORT, () => console.log(`listening on ${process.env.PORT}`));
process.on("SIGTERM", () => process.exit(0));
