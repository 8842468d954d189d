"""The field's learned evaluation metrics, in JAX: FID, KID and Inception Score on FID's Inception-v3
(`inception`, `fid`), LPIPS (`lpips`), and P-IDS / U-IDS (`ids`); `folders` evaluates two folders of
images with all of them (the `inpaintjax evaluate` command). Weights come from files the user names."""
