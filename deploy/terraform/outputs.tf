# The template's Outputs, renamed to snake_case (ServiceName -> service_name, ...), plus the
# appliances' security group (for a monitoring system's own ingress rule to /metrics).

output "service_name" {
  description = "The endpoint service name consumers use to create GWLB endpoints (aws_vpc_endpoint with vpc_endpoint_type = \"GatewayLoadBalancer\")."
  value       = aws_vpc_endpoint_service.gwlb.service_name
}

output "service_id" {
  description = "The VPC endpoint service ID."
  value       = aws_vpc_endpoint_service.gwlb.id
}

output "gateway_load_balancer_arn" {
  description = "ARN of the Gateway Load Balancer."
  value       = aws_lb.gwlb.arn
}

output "target_group_arn" {
  description = "ARN of the GENEVE target group the Auto Scaling group registers the appliances in."
  value       = aws_lb_target_group.gwlbtun.arn
}

output "autoscaling_group_name" {
  description = "Name of the appliances' Auto Scaling group (for aws autoscaling start-instance-refresh)."
  value       = aws_autoscaling_group.appliance.name
}

output "security_group_id" {
  description = "The appliances' security group; add a rule of your own for a monitoring system that scrapes /metrics."
  value       = aws_security_group.appliance.id
}
