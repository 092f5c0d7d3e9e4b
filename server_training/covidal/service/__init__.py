"""The training backend service (`covidal serve`): a FastAPI app over the project store."""
