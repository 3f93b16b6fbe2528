"""Routes of the submission tests (jobflow-remote and FireWorks) and the worker each job kind
must land on."""

ROUTING = {
    "default": {"worker": "cpu"},
    "finetune": {"worker": "gpu", "exec_config": "gpu_env"},
    "explore": {"worker": "gpu", "exec_config": "gpu_env"},
    "select": {"worker": "gpu"},
    "distill": {"worker": "gpu", "exec_config": "gpu_env"},
    "label": {"worker": "cpu", "exec_config": "cpu_env", "resources": {"job_name": "fl-label"}},
}
EXPECTED_WORKER = {"finetune": "gpu", "explore": "gpu", "select": "gpu", "label": "cpu"}
EXPECTED_WORKER.update(control="cpu", distill="gpu")

# a fixed, tiny trust window: every frame stays 'uncertain', so the loop runs both iterations
# whatever the first committee's calibration says (the job counts below depend on it)
TWO_ITERATIONS = {"trust": "fixed"}
