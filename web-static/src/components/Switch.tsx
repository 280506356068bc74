// An on/off toggle: a real checkbox (role="switch"), so keyboard, forms, screen readers and
// tests (check/uncheck/click) treat it as one, drawn as a sliding switch.

import type { InputHTMLAttributes, ReactNode } from "react";

type SwitchProps = Omit<InputHTMLAttributes<HTMLInputElement>, "type" | "onChange" | "checked"> & {
  checked: boolean;
  onChange: (checked: boolean) => void;
  /** Visible text next to the switch; without it, pass aria-label. */
  children?: ReactNode;
  testId?: string;
};

export function Switch({ checked, onChange, children, testId, className = "", ...rest }: SwitchProps) {
  return (
    <label className={`switch ${className}`}>
      <input
        type="checkbox"
        role="switch"
        checked={checked}
        aria-checked={checked}
        data-testid={testId}
        onChange={(event) => onChange(event.target.checked)}
        {...rest}
      />
      <span className="switch-track" aria-hidden="true" />
      {children !== undefined && <span className="switch-label">{children}</span>}
    </label>
  );
}
