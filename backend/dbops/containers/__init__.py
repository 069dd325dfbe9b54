"""Docker: the engine (docker SDK), the compose CLI and the job image build."""
