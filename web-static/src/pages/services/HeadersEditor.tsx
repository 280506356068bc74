// Edits a list of HTTP headers (name + value) that NGINX sets on requests to the targets or on
// responses to clients. A row left blank is dropped on save.

import { emptyHeader, type HeaderDraft } from "./draft";
import { FieldError, useField, useServiceForm } from "./formContext";

interface HeadersEditorProps {
  at: "request_headers" | "response_headers";
  title: string;
  help: string;
  headers: HeaderDraft[];
  onChange: (headers: HeaderDraft[]) => void;
}

export function HeadersEditor({ at, title, help, headers, onChange }: HeadersEditorProps) {
  const { errorAt } = useServiceForm();
  const listError = errorAt(at);
  const replace = (index: number, next: HeaderDraft) => onChange(headers.map((h, i) => (i === index ? next : h)));
  return (
    <div className="headers-editor" data-field={at}>
      <div className="subsection-title">
        <h4>{title}</h4>
        <span className="muted small">{help}</span>
      </div>
      {headers.map((header, i) => (
        <HeaderRow
          key={header.key}
          at={`${at}[${i}]`}
          header={header}
          onChange={(next) => replace(i, next)}
          onRemove={() => onChange(headers.filter((_, j) => j !== i))}
          testPrefix={at === "request_headers" ? "request-header" : "response-header"}
        />
      ))}
      {listError !== null && (
        <p className="field-error" role="alert" data-testid="field-error" data-field={at}>
          {listError}
        </p>
      )}
      <button
        type="button"
        className="btn btn-ghost btn-small"
        data-testid={`add-${at === "request_headers" ? "request" : "response"}-header-button`}
        onClick={() => onChange([...headers, emptyHeader()])}
      >
        + Add header
      </button>
    </div>
  );
}

interface HeaderRowProps {
  at: string;
  header: HeaderDraft;
  onChange: (next: HeaderDraft) => void;
  onRemove: () => void;
  testPrefix: string;
}

function HeaderRow({ at, header, onChange, onRemove, testPrefix }: HeaderRowProps) {
  const { errorAt } = useServiceForm();
  const name = useField(`${at}.name`);
  const value = useField(`${at}.value`);
  const rowError = errorAt(at);
  return (
    <div className="header-row" data-field={at}>
      <div className="header-grid">
        <input
          aria-label="Header name"
          placeholder="X-Header-Name"
          autoComplete="off"
          spellCheck={false}
          data-testid={`${testPrefix}-name`}
          value={header.name}
          onChange={(event) => onChange({ ...header, name: event.target.value })}
          {...name.props}
        />
        <input
          aria-label="Header value"
          placeholder="value (empty removes the header)"
          autoComplete="off"
          spellCheck={false}
          data-testid={`${testPrefix}-value`}
          value={header.value}
          onChange={(event) => onChange({ ...header, value: event.target.value })}
          {...value.props}
        />
        <button type="button" className="icon-button" aria-label="Remove header" onClick={onRemove}>
          <svg viewBox="0 0 20 20" aria-hidden="true">
            <path d="M5 5l10 10M15 5L5 15" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
        </button>
      </div>
      <FieldError path={`${at}.name`} id={name.errorId} message={name.error} />
      <FieldError path={`${at}.value`} id={value.errorId} message={value.error} />
      {rowError !== null && (
        <span className="field-error" role="alert" data-testid="field-error" data-field={at}>
          {rowError}
        </span>
      )}
    </div>
  );
}
