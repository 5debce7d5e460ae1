// The build step: needs a devDependency, writes what the server shows.
const isNumber = require("is-number");
require("fs").writeFileSync("built.txt", `built with is-number: ${isNumber(5)}`);
