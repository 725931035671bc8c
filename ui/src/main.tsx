import { render } from "preact";
import { tauriApi } from "./api";
import { App } from "./App";
import "./styles.css";

const root = document.getElementById("app");
if (root) render(<App api={tauriApi} />, root);
