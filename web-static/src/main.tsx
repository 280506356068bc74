import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { restoreSession } from "./api/session";
import { App } from "./app/App";
import "./styles.css";

void restoreSession();

const root = document.getElementById("root");
if (!root) throw new Error("index.html lacks #root");
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
