package egress

// hotIdleForTest is how long a tunnel direction stays off the poller.
const hotIdleForTest = hotIdle
