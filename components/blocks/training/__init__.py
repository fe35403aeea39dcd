"""Training-loop pieces shared by the papers that train networks in phases (noise2score, ccdf)."""
