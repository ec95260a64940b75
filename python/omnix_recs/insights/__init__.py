"""Customer intelligence writers: AWS Bedrock and the deterministic local analyst."""
