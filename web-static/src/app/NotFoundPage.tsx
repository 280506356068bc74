import { Link } from "./router";

export function NotFoundPage() {
  return (
    <section className="empty-state">
      <h1>Page not found</h1>
      <p>There is nothing at this address.</p>
      <Link className="btn btn-primary" to="/nodes">
        Go to Nodes
      </Link>
    </section>
  );
}
