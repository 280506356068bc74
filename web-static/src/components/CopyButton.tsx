import { useEffect, useState } from "react";
import { copyText } from "./clipboard";

interface CopyButtonProps {
  text: string;
  /** What is copied, for screen readers: "Copy <what>". */
  what: string;
  className?: string;
}

export function CopyButton({ text, what, className = "" }: CopyButtonProps) {
  const [result, setResult] = useState<"idle" | "copied" | "failed">("idle");

  useEffect(() => {
    if (result === "idle") return;
    const timer = window.setTimeout(() => setResult("idle"), 1600);
    return () => window.clearTimeout(timer);
  }, [result]);

  const label = result === "copied" ? "Copied" : result === "failed" ? "Select and copy" : "Copy";
  return (
    <button
      type="button"
      className={`btn btn-copy btn-small ${result === "copied" ? "is-copied" : ""} ${className}`}
      aria-label={`Copy ${what}`}
      title={`Copy ${what}`}
      onClick={() => void copyText(text).then((ok) => setResult(ok ? "copied" : "failed"))}
    >
      {label}
    </button>
  );
}
