// A modal built on the native <dialog> element, which gives focus trapping, the top layer and
// Escape handling for free. A click on the backdrop never closes it: some dialogs show a secret
// exactly once, and losing it to a stray click would force a key rotation.

import { useEffect, useId, useRef, type ReactNode } from "react";

interface DialogProps {
  title: string;
  onClose: () => void;
  /** When false, Escape does not close the dialog; only the close button does. */
  dismissible?: boolean;
  wide?: boolean;
  children: ReactNode;
}

export function Dialog({ title, onClose, dismissible = true, wide = false, children }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();

  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);

  return (
    <dialog
      ref={ref}
      className={wide ? "dialog dialog-wide" : "dialog"}
      aria-labelledby={titleId}
      onCancel={(event) => {
        event.preventDefault();
        if (dismissible) onClose();
      }}
      // The app never calls close(); a close event means the browser closed the dialog itself
      // (some ignore a prevented Escape when pressed repeatedly), so follow it.
      onClose={onClose}
    >
      <header className="dialog-header">
        <h2 id={titleId}>{title}</h2>
        <button type="button" className="icon-button" data-testid="dialog-close" aria-label="Close" onClick={onClose}>
          <svg viewBox="0 0 20 20" aria-hidden="true">
            <path d="M5 5l10 10M15 5L5 15" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
        </button>
      </header>
      <div className="dialog-body">{children}</div>
    </dialog>
  );
}
