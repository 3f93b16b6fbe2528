"""Launch campaigns on clusters: job routing, jobflow-remote projects and submission, FireWorks."""
