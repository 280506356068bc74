// NGINX's error text, which can run to many lines (one per retry). Shows the first few lines
// with a toggle for the rest; the whole text stays in the DOM (readable by tests and copy).

import { useState, type HTMLAttributes } from "react";

const CLAMP_LINES = 3;
const CLAMP_CHARS = 320;

type NginxErrorProps = HTMLAttributes<HTMLPreElement> & { text: string };

export function NginxError({ text, className = "", ...rest }: NginxErrorProps) {
  const [open, setOpen] = useState(false);
  const long = text.split("\n").length > CLAMP_LINES || text.length > CLAMP_CHARS;
  return (
    <div className="nginx-error-box">
      <pre className={`nginx-error ${long && !open ? "clamped" : ""} ${className}`} {...rest}>
        {text}
      </pre>
      {long && (
        <button type="button" className="link-button" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? "Show less" : "Show the full error"}
        </button>
      )}
    </div>
  );
}
