#!/usr/bin/env node
// `npm create cairnjs <directory>`: scaffolds a Cairn project (0 done, 1 failed, 2 usage).
import { main } from "../dist/index.js";

process.exitCode = main(process.argv.slice(2));
